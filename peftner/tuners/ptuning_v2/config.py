"""PEFT configuration of P-tuning v2 / deep prompt tuning (Liu et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from peftner.tuners.registry import peft_type, targets_as_sets

from .options import PtuningV2Options


@dataclass
class PtuningV2Config(PeftConfig, PtuningV2Options):
    """Trainable key/value prefixes in every self-attention layer.

    The knobs and their checks come from :class:`PtuningV2Options`, which the ``ptuning_v2`` method
    reuses: ``num_virtual_tokens`` keys/values every token can attend to in every layer;
    ``prefix_projection`` reparameterises each layer's prefix as ``MLP(embedding)`` (Li & Liang
    2021) of width ``encoder_hidden_size`` instead of training the keys/values directly;
    ``prefix_dropout`` applies to the prefix keys/values during training.

    Args:
        target_modules: self-attention modules to extend (with ``query``/``key``/``value`` projections);
            ``None`` picks BERT-family ``attention.self`` modules.
        modules_to_save: modules trained and saved in full (the classification head).
    """

    target_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "self-attention modules"})
    exclude_modules: Optional[Union[list[str], str]] = field(default=None, metadata={"help": "modules not to adapt"})
    modules_to_save: Optional[list[str]] = field(default=None, metadata={"help": "modules trained and saved in full"})

    def __post_init__(self):
        PeftConfig.__post_init__(self)
        PtuningV2Options.__post_init__(self)
        self.peft_type = peft_type("PEFTNER_PTUNING_V2")
        targets_as_sets(self)
