"""The user-facing knobs of peftner's own tuners, shared by their PEFT configs and their methods.

Plain dataclasses without PEFT imports, so the CLI can build ``--help`` from them quickly; each
tuner's ``config.py`` extends one into a ``PeftConfig`` and the method of the same name uses it as
its config: one definition (and one check) per knob.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.validation import check_fields

VARIANTS = ("houlsby", "pfeiffer")
NON_LINEARITIES = ("relu", "gelu", "swish", "tanh")


VARIANT_HELP = "houlsby: adapters after attention and feed-forward; pfeiffer: after feed-forward only"


@dataclass
class AdapterOptions:
    variant: str = field(default="houlsby", metadata={"choices": VARIANTS, "help": VARIANT_HELP})
    # Pfeiffer et al.'s default reduction factor; bottleneck = hidden size // reduction factor.
    reduction_factor: int = field(default=16, metadata={"min": 1, "help": "hidden size / adapter bottleneck size"})
    non_linearity: str = field(default="relu", metadata={"choices": NON_LINEARITIES,
                                                         "help": f"one of {', '.join(NON_LINEARITIES)}"})

    def __post_init__(self):
        check_fields(self)  # the limits each field declares in its metadata


@dataclass
class PtuningV2Options:
    num_virtual_tokens: int = field(default=16, metadata={"min": 1, "help": "prefix length in every layer"})
    prefix_projection: bool = field(default=False, metadata={
        "help": "reparameterise the prefixes with an MLP (off: train keys/values directly, as Liu et al. do for NER)"})
    encoder_hidden_size: int = field(default=512, metadata={"min": 1, "help": "hidden size of that MLP"})
    prefix_dropout: float = field(default=0.1, metadata={"min": 0, "below": 1, "help": "dropout on the prefix keys/values"})

    def __post_init__(self):
        check_fields(self)  # the limits each field declares in its metadata
