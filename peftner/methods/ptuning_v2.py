"""P-tuning v2 / deep prompt tuning (Liu et al. 2021) on the shared method contract.

Trained key/value prefixes in every self-attention layer (:mod:`peftner.tuners.ptuning_v2`, a
registered PEFT method). The prefixes live only inside attention, so inputs, positions and logits
are unchanged: one logit row per input position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names


@dataclass
class PtuningV2MethodConfig(MethodConfig):
    num_virtual_tokens: int = field(default=16, metadata={"help": "prefix length in every layer"})
    prefix_projection: bool = field(default=False, metadata={
        "help": "reparameterise the prefixes with an MLP (off: train keys/values directly, as Liu et al. do for NER)"})
    encoder_hidden_size: int = field(default=512, metadata={"help": "hidden size of that MLP"})
    prefix_dropout: float = field(default=0.1, metadata={"help": "dropout on the prefix keys/values"})

    def __post_init__(self):
        if self.num_virtual_tokens < 1:
            raise PeftnerError(f"--num-virtual-tokens must be at least 1, got {self.num_virtual_tokens}")
        if self.encoder_hidden_size < 1:
            raise PeftnerError(f"--encoder-hidden-size must be at least 1, got {self.encoder_hidden_size}")
        if not 0.0 <= self.prefix_dropout < 1.0:
            raise PeftnerError(f"--prefix-dropout must be in [0, 1), got {self.prefix_dropout}")


def apply_ptuning_v2(model, config: PtuningV2MethodConfig):
    from peft import TaskType

    from peftner.tuners import get_peft_model
    from peftner.tuners.ptuning_v2 import PtuningV2Config

    return get_peft_model(model, PtuningV2Config(
        task_type=TaskType.TOKEN_CLS, num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=config.prefix_projection, encoder_hidden_size=config.encoder_hidden_size,
        prefix_dropout=config.prefix_dropout, modules_to_save=head_module_names(model)))


PTUNING_V2 = Method(
    name="ptuning_v2",
    summary="P-tuning v2: trained key/value prefixes in every attention layer, head trained",
    config_cls=PtuningV2MethodConfig,
    apply=apply_ptuning_v2,
    # Liu et al.'s sequence-labelling scripts use learning rates around 1e-2 to 5e-2 with AdamW.
    train_defaults={"learning_rate": 1e-2},
)
