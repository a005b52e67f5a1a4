"""BitFit (Ben Zaken et al. 2022): only the bias terms of the backbone train, plus the head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, freeze_all_but, head_prefixes, resolved
from peftner.errors import PeftnerError
from peftner.methods.space import LogUniform


@dataclass
class BitFitConfig(MethodConfig):
    """No knobs: every ``*.bias`` (attention, feed-forward and LayerNorm) and the head train."""

    # Ben Zaken et al. search 1e-4..1e-3 for BERT-base; small models with few biases sit at the top.
    train_defaults: ClassVar[dict] = {"learning_rate": 1e-3}

    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-4, 1e-2)}

def check_bitfit(facts) -> None:
    if facts.backbone_biases == 0:
        raise PeftnerError(f"bitfit: this {facts.model_type} model has no bias terms in its backbone, so BitFit "
                           "would only train the head (use the head method for a linear probe)")


def bitfit_for_model(config: BitFitConfig, facts):
    check_bitfit(facts)  # a backbone without biases would leave a linear probe, silently
    return config


def apply_bitfit(model, config: BitFitConfig):
    resolved(BITFIT, model, config)
    heads = head_prefixes(model)
    return freeze_all_but(model, lambda name: name.startswith(heads) or name.endswith(".bias"))


BITFIT = Method(
    name="bitfit",
    summary="BitFit: only bias terms and the classifier head train",
    config_cls=BitFitConfig,
    apply=apply_bitfit,
    is_peft=False,
    saves_trained_only=True,
    for_model=bitfit_for_model,
    compared=False,
)
