"""(IA)³ (Liu et al. 2022): learned vectors that rescale keys, values and feed-forward activations (and, by
default here, the queries: the sweep's winner)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names, resolved
from peftner.methods.space import Bundle, LogUniform
from peftner.methods.targets import check_targets, need_layout
from peftner.models.facts import ModelFacts, peft_ia3_feedforward, peft_mapping
from peftner.models.layouts import Layout

# IA3 target sets named by role, resolved per architecture (so a tuned default holds on every backbone)
IA3_KEY_VALUE_FFN = "key-value-ffn"  # Liu et al.: keys, values, feed-forward activations (unset means this)
IA3_QUERY_KEY_VALUE_FFN = "query-key-value-ffn"  # the same plus the attention queries
IA3_KEY_VALUE = "key-value"  # attention only
IA3_TARGET_SETS = (IA3_KEY_VALUE_FFN, IA3_QUERY_KEY_VALUE_FFN, IA3_KEY_VALUE)


@dataclass
class IA3MethodConfig(MethodConfig):
    # Names match module-name suffixes (PEFT's rule), or name a set by role that is resolved per
    # architecture (peftner.models.layouts): key-value-ffn (Liu et al.; also what unset means),
    # query-key-value-ffn, key-value. For BERT, key-value-ffn is key, value, output.dense; there
    # ``output.dense`` is the feed-forward down projection but also the suffix of
    # ``attention.output.dense``, which the paper does not scale: it is excluded by name.
    # Default: the committed sweep's winner on WNUT-16 (benchmarks/results/wnut16_tuned; test_tune
    # checks it): queries scaled too.
    target_modules: list[str] | None = field(default_factory=lambda: [IA3_QUERY_KEY_VALUE_FFN], metadata={
        "help": "module-name suffixes to rescale, or a set resolved per architecture: query-key-value-ffn "
                "(attention queries, keys, values and the feed-forward activation), key-value-ffn (Liu et al.; "
                "also what null means), key-value (docs/models.md)"})
    # Feed-forward targets are scaled on their input (the intermediate activation, size d_ff), the
    # others on their output (size d): l_k, l_v and l_ff of the paper.
    feedforward_modules: list[str] | None = field(default=None, metadata={
        "help": "targets rescaled on their input (unset: the architecture's feed-forward down-projection)"})
    exclude_modules: list[str] | None = field(default=None, metadata={
        "help": "module-name suffixes never adapted (unset: per architecture, e.g. BERT's attention.output.dense)"})
    # (IA)^3 vectors start at 1 and need large steps (Liu et al. train them at 3e-3); the sweep's
    # winner on WNUT-16 is larger still.
    train_defaults: ClassVar[dict] = {"learning_rate": 1.3e-2}

    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {
        "learning_rate": LogUniform(1e-3, 3e-2),
        # Named sets, resolved per architecture (the feed-forward module follows the targets).
        "targets": Bundle.of({
            "key,value,ffn": {"target_modules": IA3_KEY_VALUE_FFN},
            "key,value": {"target_modules": IA3_KEY_VALUE},
            "query,key,value,ffn": {"target_modules": IA3_QUERY_KEY_VALUE_FFN}}),
    }

def ia3_for_model(config: IA3MethodConfig, facts):
    targets, feedforward, exclude = ia3_modules(facts, config.target_modules, config.feedforward_modules,
                                                config.exclude_modules)
    return dataclasses.replace(config, target_modules=targets, feedforward_modules=feedforward,
                               exclude_modules=exclude)


def apply_ia3(model, config: IA3MethodConfig):
    from peft import IA3Config, TaskType

    from peftner.tuners import get_peft_model

    config = resolved(IA3, model, config)

    # PEFT checks the options (e.g. feed-forward modules that are not targets) when the config is built.
    return get_peft_model(model, lambda: IA3Config(
        task_type=TaskType.TOKEN_CLS, target_modules=list(config.target_modules),
        feedforward_modules=list(config.feedforward_modules), exclude_modules=list(config.exclude_modules) or None,
        modules_to_save=head_module_names(model)), "ia3")


def ia3_modules(facts: ModelFacts, targets, feedforward, exclude):
    """IA3 (targets, feed-forward, exclude): the layout's unless given; every listed target must exist."""
    if facts.layout is not None:
        default = (list(facts.layout.ia3), list(facts.layout.ia3_feedforward), list(facts.layout.ia3_exclude))
    else:
        peft_targets = peft_mapping("IA3", facts.model_type)
        default = (list(peft_targets), list(peft_ia3_feedforward(facts.model_type) or []), []) if peft_targets else None
    named = targets[0] if targets and len(targets) == 1 and targets[0] in IA3_TARGET_SETS else None
    if targets in (None, []) or named == IA3_KEY_VALUE_FFN:
        if default is None:
            need_layout(facts, "ia3", "target modules", alternative="")
        targets = default[0]
    elif named:
        if facts.layout is None:
            need_layout(facts, "ia3", f"{named} modules", alternative="")
        targets = _ia3_target_set(facts.layout, named)
    targets = list(targets)
    if feedforward is None:
        feedforward = [f for f in (default[1] if default else []) if f in targets]
    if exclude is None:
        exclude = default[2] if default else []
    feedforward, exclude = list(feedforward), list(exclude)
    check_targets(facts, "ia3", targets, instead=" or ".join(IA3_TARGET_SETS))
    unscaled = [f for f in feedforward if f not in targets]
    if unscaled:
        raise PeftnerError(f"ia3: --feedforward-modules {','.join(unscaled)} must also be in --target-modules")
    return targets, feedforward, exclude


def _ia3_target_set(layout: Layout, name: str) -> list:
    """``key-value`` or ``query-key-value-ffn`` as the layout's module names. The query projection is
    LoRA's query/value pair minus IA3's modules; a fused query-key-value projection is scaled whole, so
    there both sets include the queries."""
    if name == IA3_KEY_VALUE:
        return [m for m in layout.ia3 if m not in layout.ia3_feedforward]
    return [m for m in layout.lora if m not in layout.ia3] + list(layout.ia3)


IA3 = Method(
    name="ia3",
    summary="(IA)^3 rescaling vectors on attention queries, keys, values and feed-forward activations, head trained",
    config_cls=IA3MethodConfig,
    apply=apply_ia3,
    for_model=ia3_for_model,
)
