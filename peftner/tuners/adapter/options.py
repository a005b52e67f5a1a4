"""The knobs of a bottleneck adapter, shared by the PEFT config and the ``adapter`` method.

Plain dataclass without PEFT imports, so the CLI can build ``--help`` from it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.errors import require

VARIANTS = ("houlsby", "pfeiffer")
NON_LINEARITIES = ("relu", "gelu", "swish", "tanh")


@dataclass
class AdapterOptions:
    variant: str = field(default="houlsby", metadata={
        "help": "houlsby: adapters after attention and feed-forward; pfeiffer: after feed-forward only"})
    # Pfeiffer et al.'s default reduction factor; bottleneck = hidden size // reduction factor.
    reduction_factor: int = field(default=16, metadata={"help": "hidden size / adapter bottleneck size"})
    non_linearity: str = field(default="relu", metadata={"help": f"one of {', '.join(NON_LINEARITIES)}"})

    def __post_init__(self):
        require(self.variant in VARIANTS, "variant", f"one of {', '.join(VARIANTS)}", self.variant)
        require(self.non_linearity in NON_LINEARITIES, "non_linearity", f"one of {', '.join(NON_LINEARITIES)}",
                self.non_linearity)
        require(isinstance(self.reduction_factor, int) and self.reduction_factor >= 1, "reduction_factor",
                "at least 1", self.reduction_factor)
