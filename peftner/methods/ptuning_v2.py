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
from peftner.errors import PeftnerError
from peftner.methods.space import Choice, LogUniform
from peftner.models.facts import ModelFacts, facts_of
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


def ptuning_v2_mode(facts: ModelFacts) -> str:
    """``"bert"`` or ``"interface"`` (see :class:`Layout`), or a one-line refusal."""
    layout = facts.layout
    mode = layout.ptuning_v2 if layout is not None else ("interface" if facts.uses_attention_interface else
                                                         "its attention does not use transformers' attention "
                                                         "interface, so the keys/values cannot be reached")
    if mode not in ("bert", "interface"):
        raise PeftnerError(f"ptuning_v2 cannot apply to model type {facts.model_type!r}: {mode}")
    if mode == "interface" and not facts.uses_attention_interface:
        raise PeftnerError(f"ptuning_v2 cannot apply to model type {facts.model_type!r}: its attention does not "
                           "use transformers' attention interface, so the keys/values cannot be reached")
    return mode


def ptuning_v2_attention(facts: ModelFacts, model):
    """P-tuning v2 targets: None for the BERT-family layer (its own default), else the attention modules."""
    if ptuning_v2_mode(facts) == "bert":
        return None
    if facts.layout is not None and facts.layout.ptuning_v2_attention:
        return [facts.layout.ptuning_v2_attention]
    from peftner.tuners.ptuning_v2.interface import supports_interface  # imports PEFT: only when needed

    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if supports_interface(m)})


def ptuning_v2_targets_of(model, config: PtuningV2MethodConfig):
    return ptuning_v2_attention(facts_of(model), model)  # None: the BERT-family default


def ptuning_v2_for_model(config: PtuningV2MethodConfig, facts):
    ptuning_v2_mode(facts)  # refuses attention whose keys/values cannot be reached
    return config


PTUNING_V2 = Method(
    name="ptuning_v2",
    summary="P-tuning v2: trained key/value prefixes in every attention layer, head trained",
    config_cls=PtuningV2MethodConfig,
    apply=own_tuner("ptuning_v2", "PtuningV2Config", "ptuning_v2", targets=ptuning_v2_targets_of),
    for_model=ptuning_v2_for_model,
)
