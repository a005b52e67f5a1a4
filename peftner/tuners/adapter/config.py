"""PEFT configuration of bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from peftner.tuners.registry import peft_type, targets_as_sets

from .options import NON_LINEARITIES, VARIANTS, AdapterOptions  # noqa: F401  (re-exported)


@dataclass
class BottleneckConfig(PeftConfig, AdapterOptions):
    """A bottleneck adapter ``x + up(f(down(x)))`` after sub-layer output projections.

    The knobs (``variant``, ``reduction_factor``, ``non_linearity``) and their checks come from
    :class:`AdapterOptions`, which the ``adapter`` method reuses. ``variant="houlsby"`` puts an
    adapter after the attention output projection and after the feed-forward output projection of
    every layer; ``"pfeiffer"`` only after the feed-forward one. The bottleneck has
    ``hidden // reduction_factor`` units (at least one).

    Args:
        target_modules: names (list: exact or suffix match; str: regex full match) of the ``nn.Linear``
            output projections to adapt; ``None`` picks them from ``variant`` and the model type.
        modules_to_save: modules trained and saved in full (the classification head).
        init_weights: zero-initialise the up-projection so the adapted model starts as the backbone.
    """

    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "output projections to adapt"})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "modules not to adapt"})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": "modules trained and saved in full"})
    init_weights: bool = field(default=True, metadata={"help": "zero up-projection: start as the backbone"})

    def __post_init__(self):
        PeftConfig.__post_init__(self)
        AdapterOptions.__post_init__(self)
        self.peft_type = peft_type("PEFTNER_BOTTLENECK")
        targets_as_sets(self)
