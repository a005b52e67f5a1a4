"""P-tuning v2 / deep prompt tuning (Liu et al. 2021) on the shared method contract.

Trained key/value prefixes in every self-attention layer (:mod:`peftner.tuners.ptuning_v2`, a
registered PEFT method whose knobs, :class:`~peftner.tuners.options.PtuningV2Options`, are this
method's). The prefixes live only inside attention, so inputs, positions and logits are unchanged:
one logit row per input position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, own_tuner
from peftner.space import Choice, LogUniform
from peftner.tuners.options import PtuningV2Options


@dataclass
class PtuningV2MethodConfig(PtuningV2Options, MethodConfig):
    # Defaults: the committed sweep's winner on WNUT-16 (benchmarks/results/wnut16_tuned; test_tune
    # checks it): 64 prefix tokens (the longest searched) at 4.3e-2, inside the 1e-2..5e-2 of Liu et
    # al.'s sequence-labelling scripts (AdamW).
    num_virtual_tokens: int = field(default=64, metadata={"min": 1, "help": "prefix length in every layer"})
    train_defaults: ClassVar[dict] = {"learning_rate": 4.3e-2}
    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-3, 5e-2),
                                   "num_virtual_tokens": Choice((4, 8, 16, 32, 64))}


def ptuning_v2_targets_of(model, config: PtuningV2MethodConfig):
    from peftner.architectures import facts_of, ptuning_v2_attention

    return ptuning_v2_attention(facts_of(model), model)  # None: the BERT-family default


def ptuning_v2_for_model(config: PtuningV2MethodConfig, facts):
    from peftner.architectures import ptuning_v2_mode

    ptuning_v2_mode(facts)  # refuses attention whose keys/values cannot be reached
    return config


PTUNING_V2 = Method(
    name="ptuning_v2",
    summary="P-tuning v2: trained key/value prefixes in every attention layer, head trained",
    config_cls=PtuningV2MethodConfig,
    apply=own_tuner("ptuning_v2", "PtuningV2Config", "ptuning_v2", targets=ptuning_v2_targets_of),
    for_model=ptuning_v2_for_model,
)
