"""The knobs of a bottleneck adapter, shared by the PEFT config and the ``adapter`` method.

Plain dataclass without PEFT imports, so the CLI can build ``--help`` from it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.validation import check_fields

VARIANTS = ("houlsby", "pfeiffer")
NON_LINEARITIES = ("relu", "gelu", "swish", "tanh")


@dataclass
class AdapterOptions:
    variant: str = field(default="houlsby", metadata={"choices": VARIANTS,
        "help": "houlsby: adapters after attention and feed-forward; pfeiffer: after feed-forward only"})
    # Pfeiffer et al.'s default reduction factor; bottleneck = hidden size // reduction factor.
    reduction_factor: int = field(default=16, metadata={"min": 1, "help": "hidden size / adapter bottleneck size"})
    non_linearity: str = field(default="relu", metadata={"choices": NON_LINEARITIES,
                                                         "help": f"one of {', '.join(NON_LINEARITIES)}"})

    def __post_init__(self):
        check_fields(self)  # the limits each field declares in its metadata
