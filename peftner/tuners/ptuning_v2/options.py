"""The knobs of P-tuning v2, shared by the PEFT config and the ``ptuning_v2`` method.

Plain dataclass without PEFT imports, so the CLI can build ``--help`` from it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.errors import require


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
