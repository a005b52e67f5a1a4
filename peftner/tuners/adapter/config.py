"""Configuration of bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from peftner.tuners.registry import peft_type

VARIANTS = ("houlsby", "pfeiffer")
NON_LINEARITIES = ("relu", "gelu", "swish", "tanh")


@dataclass
class BottleneckConfig(PeftConfig):
    """A bottleneck adapter ``x + up(f(down(x)))`` after sub-layer output projections.

    Args:
        variant: ``"houlsby"`` puts an adapter after the attention output projection and after the
            feed-forward output projection of every layer; ``"pfeiffer"`` only after the feed-forward one.
        reduction_factor: hidden size / bottleneck size (the bottleneck has ``hidden // reduction_factor``
            units, at least one).
        non_linearity: activation between the two projections.
        target_modules: names (list: exact or suffix match; str: regex full match) of the ``nn.Linear``
            output projections to adapt; ``None`` picks them from ``variant`` and the model type.
        modules_to_save: modules trained and saved in full (the classification head).
        init_weights: zero-initialise the up-projection so the adapted model starts as the backbone.
    """

    variant: str = field(default="houlsby", metadata={"help": f"one of {VARIANTS}"})
    reduction_factor: int = field(default=16, metadata={"help": "hidden size / bottleneck size"})
    non_linearity: str = field(default="relu", metadata={"help": f"one of {NON_LINEARITIES}"})
    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "output projections to adapt"})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "modules not to adapt"})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": "modules trained and saved in full"})
    init_weights: bool = field(default=True, metadata={"help": "zero up-projection: start as the backbone"})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = peft_type("PEFTNER_BOTTLENECK")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.non_linearity not in NON_LINEARITIES:
            raise ValueError(f"non_linearity must be one of {', '.join(NON_LINEARITIES)}, got {self.non_linearity!r}")
        if not isinstance(self.reduction_factor, int) or self.reduction_factor < 1:
            raise ValueError(f"reduction_factor must be a positive integer, got {self.reduction_factor!r}")
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, set(value))
