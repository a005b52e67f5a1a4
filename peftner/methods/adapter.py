"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021) on the shared method contract.

The adapter itself is a registered PEFT method (:mod:`peftner.tuners.adapter`), so training,
saving and reloading go through PEFT exactly like LoRA. Its knobs are the tuner's
:class:`~peftner.tuners.options.AdapterOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, own_tuner
from peftner.methods.space import Choice, LogUniform
from peftner.models.facts import ModelFacts, facts_of
from peftner.models.layouts import adapter_targets
from peftner.tuners.options import VARIANT_HELP, VARIANTS, AdapterOptions


@dataclass
class AdapterMethodConfig(AdapterOptions, MethodConfig):
    # Defaults: the committed sweep's winner on WNUT-16 (benchmarks/results/wnut16_tuned; test_tune
    # checks it): Pfeiffer placement (after the feed-forward block only), bottleneck d/32, 2.6e-3
    # (Houlsby et al. swept 3e-5..3e-3).
    variant: str = field(default="pfeiffer", metadata={"choices": VARIANTS, "help": VARIANT_HELP})
    reduction_factor: int = field(default=32, metadata={"min": 1, "help": "hidden size / adapter bottleneck size"})
    train_defaults: ClassVar[dict] = {"learning_rate": 2.6e-3}
    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(5e-5, 3e-3),
                                   "reduction_factor": Choice((4, 8, 16, 32, 64)), "variant": Choice(VARIANTS)}


def adapter_targets_for(facts: ModelFacts, variant: str) -> str:
    """The output projections an adapter follows in this model, or a one-line refusal."""
    return adapter_targets(facts.layout, facts.model_type, variant, facts.describe_linear())


def adapter_targets_of(model, config: AdapterMethodConfig):
    return adapter_targets_for(facts_of(model), config.variant)


def adapter_for_model(config: AdapterMethodConfig, facts):
    adapter_targets_for(facts, config.variant)  # refuses architectures whose output projections are unknown
    return config


ADAPTER = Method(
    name="adapter",
    summary="bottleneck adapters (Houlsby or Pfeiffer placement) in every layer, head trained",
    config_cls=AdapterMethodConfig,
    apply=own_tuner("adapter", "BottleneckConfig", "adapter", targets=adapter_targets_of),
    for_model=adapter_for_model,
)
