"""The user-facing knobs of peftner's own tuners, shared by their PEFT configs and their methods.

Plain dataclasses without PEFT imports, so the CLI can build ``--help`` from them quickly; each
tuner's ``config.py`` extends one into a ``PeftConfig`` and the method of the same name uses it as
its config: one definition (and one check) per knob.
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


@dataclass
class PtuningV2Options:
    num_virtual_tokens: int = field(default=16, metadata={"help": "prefix length in every layer"})
    prefix_projection: bool = field(default=False, metadata={
        "help": "reparameterise the prefixes with an MLP (off: train keys/values directly, as Liu et al. do for NER)"})
    encoder_hidden_size: int = field(default=512, metadata={"help": "hidden size of that MLP"})
    prefix_dropout: float = field(default=0.1, metadata={"help": "dropout on the prefix keys/values"})

    def __post_init__(self):
        require(isinstance(self.num_virtual_tokens, int) and self.num_virtual_tokens >= 1, "num_virtual_tokens",
                "at least 1", self.num_virtual_tokens)
        require(self.encoder_hidden_size >= 1, "encoder_hidden_size", "at least 1", self.encoder_hidden_size)
        require(0.0 <= self.prefix_dropout < 1.0, "prefix_dropout", "in [0, 1)", self.prefix_dropout)
