"""The knobs of P-tuning v2, shared by the PEFT config and the ``ptuning_v2`` method.

Plain dataclass without PEFT imports, so the CLI can build ``--help`` from it quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.validation import check_fields


@dataclass
class PtuningV2Options:
    num_virtual_tokens: int = field(default=16, metadata={"min": 1, "help": "prefix length in every layer"})
    prefix_projection: bool = field(default=False, metadata={
        "help": "reparameterise the prefixes with an MLP (off: train keys/values directly, as Liu et al. do for NER)"})
    encoder_hidden_size: int = field(default=512, metadata={"min": 1, "help": "hidden size of that MLP"})
    prefix_dropout: float = field(default=0.1, metadata={"min": 0, "below": 1, "help": "dropout on the prefix keys/values"})

    def __post_init__(self):
        check_fields(self)  # the limits each field declares in its metadata
