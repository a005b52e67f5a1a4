"""P-tuning v2 / deep prompt tuning (Liu et al. 2021) on the shared method contract.

Trained key/value prefixes in every self-attention layer (:mod:`peftner.tuners.ptuning_v2`, a
registered PEFT method whose knobs, :class:`~peftner.tuners.ptuning_v2.PtuningV2Options`, are this
method's). The prefixes live only inside attention, so inputs, positions and logits are unchanged:
one logit row per input position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, head_module_names
from peftner.space import Choice, LogUniform
from peftner.tuners.ptuning_v2 import PtuningV2Options


@dataclass
class PtuningV2MethodConfig(PtuningV2Options, MethodConfig):
    # Liu et al.'s sequence-labelling scripts use learning rates around 1e-2 to 5e-2 with AdamW.
    train_defaults: ClassVar[dict] = {"learning_rate": 1e-2}
    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-3, 5e-2),
                                   "num_virtual_tokens": Choice((4, 8, 16, 32, 64))}


def apply_ptuning_v2(model, config: PtuningV2MethodConfig):
    from peft import TaskType

    from peftner.tuners import get_peft_model
    from peftner.tuners.ptuning_v2 import PtuningV2Config

    from peftner.architectures import facts_of, ptuning_v2_attention

    targets = ptuning_v2_attention(facts_of(model), model)  # None: the BERT-family default
    return get_peft_model(model, lambda: PtuningV2Config(
        task_type=TaskType.TOKEN_CLS, num_virtual_tokens=config.num_virtual_tokens,
        prefix_projection=config.prefix_projection, encoder_hidden_size=config.encoder_hidden_size,
        prefix_dropout=config.prefix_dropout, modules_to_save=head_module_names(model),
        target_modules=targets), "ptuning_v2")


def ptuning_v2_for_model(config: PtuningV2MethodConfig, facts):
    from peftner.architectures import ptuning_v2_mode

    ptuning_v2_mode(facts)  # refuses attention whose keys/values cannot be reached
    return config


PTUNING_V2 = Method(
    name="ptuning_v2",
    summary="P-tuning v2: trained key/value prefixes in every attention layer, head trained",
    config_cls=PtuningV2MethodConfig,
    apply=apply_ptuning_v2,
    for_model=ptuning_v2_for_model,
)
