"""(IA)³ (Liu et al. 2022): learned vectors that rescale keys, values and feed-forward activations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, head_module_names


@dataclass
class IA3MethodConfig(MethodConfig):
    # Names match module-name suffixes (PEFT's rule). In BERT ``output.dense`` is the feed-forward down
    # projection but also the suffix of ``attention.output.dense``, which the paper does not scale:
    # it is excluded by name.
    target_modules: list[str] = field(default_factory=lambda: ["key", "value", "output.dense"],
                                      metadata={"help": "module-name suffixes to rescale"})
    # Feed-forward targets are scaled on their input (the intermediate activation, size d_ff), the
    # others on their output (size d): l_k, l_v and l_ff of the paper.
    feedforward_modules: list[str] = field(default_factory=lambda: ["output.dense"], metadata={
        "help": "targets rescaled on their input (feed-forward down-projection)"})
    exclude_modules: list[str] = field(default_factory=lambda: ["attention.output.dense"],
                                       metadata={"help": "module-name suffixes never adapted"})
    # (IA)^3 vectors start at 1 and need large steps: Liu et al. train them at 3e-3.
    train_defaults: ClassVar[dict] = {"learning_rate": 3e-3}


def apply_ia3(model, config: IA3MethodConfig):
    from peft import IA3Config, TaskType

    from peftner.tuners import get_peft_model

    # PEFT checks the options (e.g. feed-forward modules that are not targets) when the config is built.
    return get_peft_model(model, lambda: IA3Config(
        task_type=TaskType.TOKEN_CLS, target_modules=list(config.target_modules),
        feedforward_modules=list(config.feedforward_modules), exclude_modules=list(config.exclude_modules) or None,
        modules_to_save=head_module_names(model)), "ia3")


IA3 = Method(
    name="ia3",
    summary="(IA)^3 rescaling vectors on keys, values and feed-forward activations, head trained",
    config_cls=IA3MethodConfig,
    apply=apply_ia3,
)
