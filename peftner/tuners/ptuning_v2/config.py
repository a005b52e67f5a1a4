"""Configuration of P-tuning v2 / deep prompt tuning (Liu et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from peftner.tuners.registry import peft_type


@dataclass
class PtuningV2Config(PeftConfig):
    """Trainable key/value prefixes in every self-attention layer.

    Args:
        num_virtual_tokens: prefix length: keys/values every token can attend to, in every layer.
        prefix_projection: reparameterise each layer's prefix as ``MLP(embedding)`` (Li & Liang 2021)
            instead of training the keys/values directly.
        encoder_hidden_size: width of that MLP.
        prefix_dropout: dropout on the prefix keys/values during training.
        target_modules: self-attention modules to extend (with ``query``/``key``/``value`` projections);
            ``None`` picks BERT-family ``attention.self`` modules.
        modules_to_save: modules trained and saved in full (the classification head).
    """

    num_virtual_tokens: int = field(default=16, metadata={"help": "prefix length per layer"})
    prefix_projection: bool = field(default=False, metadata={"help": "reparameterise prefixes with an MLP"})
    encoder_hidden_size: int = field(default=512, metadata={"help": "hidden size of the reparameterisation MLP"})
    prefix_dropout: float = field(default=0.1, metadata={"help": "dropout on prefix keys/values"})
    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "self-attention modules"})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "modules not to adapt"})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": "modules trained and saved in full"})

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = peft_type("PEFTNER_PTUNING_V2")
        if not isinstance(self.num_virtual_tokens, int) or self.num_virtual_tokens < 1:
            raise ValueError(f"num_virtual_tokens must be a positive integer, got {self.num_virtual_tokens!r}")
        if self.prefix_projection and self.encoder_hidden_size < 1:
            raise ValueError(f"encoder_hidden_size must be positive, got {self.encoder_hidden_size!r}")
        if not 0.0 <= self.prefix_dropout < 1.0:
            raise ValueError(f"prefix_dropout must be in [0, 1), got {self.prefix_dropout!r}")
        for name in ("target_modules", "exclude_modules"):
            value = getattr(self, name)
            if isinstance(value, list):
                setattr(self, name, set(value))
