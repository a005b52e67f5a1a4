"""Which modules a method adapts: the names users give (``all-linear``, ``query-value``, suffixes)
resolved against one model's facts, shared by every method that takes ``--target-modules``.

The per-architecture defaults are data (:mod:`peftner.models.layouts`, then PEFT's own target maps);
a model type with neither, or a name that matches no linear layer, is refused in one line that lists
the model's linear-layer names.
"""

from __future__ import annotations

from peftner.errors import PeftnerError
from peftner.models.facts import ModelFacts, peft_mapping

ALL_LINEAR = "all-linear"
QUERY_VALUE = "query-value"  # LoRA as Hu et al.: the architecture's attention query/value projections


def need_layout(facts: ModelFacts, method: str, what: str, alternative: str = ALL_LINEAR):
    """Refuse a method that has no default for this model type."""
    instead = f" (or --target-modules {alternative})" if alternative else ""
    raise PeftnerError(f"{method}: no default {what} for model type {facts.model_type!r}; pass --target-modules"
                       f"{instead}; its linear layers are: {facts.describe_linear()}")


def check_targets(facts: ModelFacts, method: str, targets, instead: str = ALL_LINEAR) -> None:
    """Every listed target must name at least one linear layer of the backbone."""
    if isinstance(targets, str):
        return  # a regex (all-linear resolved): PEFT reports a regex that matches nothing
    missing = [t for t in targets if not facts.matches(t)]
    if missing:
        raise PeftnerError(f"{method}: --target-modules {','.join(missing)} match no linear layer of this "
                           f"{facts.model_type} model; its linear layers are: {facts.describe_linear()} "
                           f"(or use --target-modules {instead})")


def lora_targets(facts: ModelFacts, requested, method: str = "lora", peft_name: str = "LORA"):
    """``requested`` (None or ``query-value``: the architecture's query/value projections;
    ``all-linear``; suffixes) resolved and checked. ``peft_name`` picks PEFT's target map for model
    types peftner has no layout for."""
    if requested in (None, [], QUERY_VALUE, [QUERY_VALUE]):
        if facts.layout is not None:
            targets = list(facts.layout.lora)
        else:
            targets = peft_mapping(peft_name, facts.model_type)
            if not targets:
                need_layout(facts, method, "target modules")
            targets = list(targets)
    elif list(requested) == [ALL_LINEAR] or requested == ALL_LINEAR:
        return facts.all_linear()
    else:
        targets = list(requested)
    check_targets(facts, method, targets)
    return targets
