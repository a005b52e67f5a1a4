"""Every other PEFT method by its PEFT name (``peftner train vera``, ``loha``, ``oft``, ...): one row each.

A row names the PEFT type, its knobs (PEFT config fields; their help text is PEFT's own), the
learning rate it starts from and what ``peftner tune`` searches. :func:`method_of` turns a row into a
:class:`~peftner.methods.base.Method` whose config class is generated from the row, so a method is
declared once and gets flags, ``--help``, a search space and a docs row like the hand-written ones.

Targets are resolved per architecture the way LoRA's are: unset (or ``query-value``) is PEFT's own
default for the type and model type, else the layout's attention query/value projections
(:mod:`peftner.models.layouts`); ``all-linear`` is every linear layer of the backbone. Knobs whose PEFT
default does not fit every layer size (a vector length that must divide the width, a number of
frequencies below the matrix size) default to ``None``: the largest value at most PEFT's default
that fits every adapted layer, computed when the method is applied (``None`` is also the first
option of such a knob's search space).

:data:`REFUSED` gives, for each ``PeftType`` no method covers, the reason in one line (and where a
peftner method does the job); :data:`COVERED` maps PEFT types to the peftner method that runs them.
A ``PeftType`` in neither is a PEFT upgrade this module has not handled yet (tests/test_peft_coverage.py
fails until it is).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names
from peftner.methods.space import Choice, LogUniform


# --------------------------------------------------------------------------- knobs fitted to layer sizes


def _divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)


def common_divisor(cap: int, sides: str = "both") -> Callable[[list, dict], int]:
    """The largest number at most ``cap`` dividing every adapted layer's input and output width."""
    def rule(dims, knobs):
        widths = [i for i, _ in dims] * (sides in ("both", "in")) + [o for _, o in dims] * (sides in ("both", "out"))
        return _divisor_at_most(math.gcd(*widths), cap)
    return rule


def at_most(cap: int, size: Callable[[int, int], float]) -> Callable[[list, dict], int]:
    """``cap``, or less where a layer's ``size(in, out)`` is smaller."""
    return lambda dims, knobs: max(1, min([cap] + [int(size(i, o)) for i, o in dims]))


def times(factor: int, knob: str) -> Callable[[list, dict], int]:
    """``factor`` times another knob's value (a scale that must follow a rank)."""
    return lambda dims, knobs: factor * knobs[knob]


@dataclass(frozen=True)
class Fit:
    """A knob whose default depends on the adapted layers or on the other knobs: ``rule([(in, out), ...],
    knobs)`` when left unset (the other knobs set first)."""

    type: type
    rule: Callable[[list, dict], Any]
    help: str


# --------------------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Row:
    """One PEFT type as a peftner method."""

    peft_type: str
    summary: str
    learning_rate: float
    knobs: dict = field(default_factory=dict)  # PEFT config field -> default (a value or a Fit)
    space: dict = field(default_factory=dict)  # knob -> search entry (the learning rate is added)
    lr_range: tuple = (1e-4, 1e-2)
    # linear (like LoRA), norms (LayerNorm/RMSNorm modules), blocks (transformer layers), prompt (virtual tokens)
    targets: str = "linear"
    fixed: dict = field(default_factory=dict)  # PEFT config arguments that are not knobs
    single_task: bool = False  # POLY: one task, task id 0 on every forward
    # limits of numeric knobs (peftner.validation); unset: integers at least 1, numbers at least 0
    limits: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.peft_type.lower()


_RANKS = Choice((4, 8, 16, 32))
ROWS: tuple[Row, ...] = (
    Row("ADALORA", "AdaLoRA: LoRA whose ranks are pruned to a budget by importance during training", 1e-3,
        {"init_r": 12, "target_r": 4, "lora_alpha": 8}, {"target_r": Choice((2, 4, 8))},
        fixed={"total_step": 1}),  # the loop sets the real number of steps (peftner.training.rank_allocation)
    Row("ADAMSS", "AdaMSS: updates in a few subspaces of the weights' SVD", 1e-3, {"r": 100, "num_subspaces": 5},
        {"num_subspaces": Choice((3, 5, 10))}),
    Row("BEFT", "BEFT: bias-efficient fine-tuning of chosen projections", 5e-3, {}, {}, lr_range=(1e-3, 5e-2)),
    Row("BOFT", "BOFT: butterfly-factorised orthogonal rotations of the weights", 1e-3,
        {"boft_block_size": 4}, {"boft_block_size": Choice((2, 4, 8))}),
    Row("C3A", "C3A: block-circulant convolution updates", 5e-3,
        {"block_size": Fit(int, common_divisor(256), "block size (unset: the largest ≤ 256 dividing every adapted width)")},
        {"block_size": Choice((None, 32, 64))}, lr_range=(1e-3, 5e-2)),
    Row("DEFT", "DeFT: decomposed fine-tuning with a low-rank update", 1e-3, {"r": 8}, {"r": _RANKS}),
    Row("DELORA", "DeLoRA: LoRA with a bounded, decoupled norm of the update", 1e-3, {"r": 8}, {"r": _RANKS},
        lr_range=(1e-4, 3e-2)),
    Row("FOURIERFT", "FourierFT: a few trained spectral coefficients of each weight update", 5e-3,
        {"n_frequency": Fit(int, at_most(1000, lambda i, o: i * o),
                            "trained frequencies per layer (unset: 1000, or the layer's size if smaller)"),
         "scaling": 150.0}, {"n_frequency": Choice((None, 100, 500, 2000))}, lr_range=(1e-3, 1e-1)),
    Row("FROD", "FRoD: shared random bases with sparse trained coefficients", 5e-3, {"sparse_rate": 0.01},
        {"sparse_rate": Choice((0.005, 0.01, 0.05))}, lr_range=(1e-3, 5e-2), fixed={"progressbar": False},
        limits={"sparse_rate": {"above": 0, "max": 1}}),
    Row("GLORA", "GLoRA: generalised LoRA (scales, shifts and low-rank terms)", 1e-3, {"r": 8}, {"r": _RANKS}),
    Row("GRALORA", "GraLoRA: granular (block-wise) low-rank updates", 1e-3, {"r": 32, "alpha": 64},
        {"r": Choice((16, 32, 64))}),
    Row("HIRA", "HiRA: Hadamard product of the weight with a low-rank update", 1e-3, {"r": 32},
        {"r": Choice((8, 16, 32))}),
    Row("HRA", "HRA: chained Householder reflections of the weights", 1e-3, {"r": 8}, {"r": _RANKS},
        lr_range=(1e-4, 3e-2)),
    Row("LILY", "Lily: low-rank updates with shared cross-layer projectors", 1e-3, {"r": 32},
        {"r": Choice((8, 16, 32))}),
    Row("LN_TUNING", "LN tuning: only the LayerNorm / RMSNorm parameters (and the head) train", 5e-3, {}, {},
        lr_range=(1e-3, 5e-2), targets="norms"),
    Row("LOHA", "LoHa: Hadamard product of two low-rank updates", 1e-3, {"r": 8, "alpha": 8}, {"r": _RANKS}),
    Row("LOKR", "LoKr: Kronecker product of a small and a low-rank factor", 1e-3, {"r": 8, "alpha": 8},
        {"r": _RANKS}),
    Row("MISS", "MiSS: a shared trained shard expanded over each weight", 1e-3,
        {"r": Fit(int, at_most(64, lambda i, o: i), "shard size (unset: 64, or the input width if smaller)")},
        {"r": Choice((None, 16, 32))}),
    Row("OFT", "OFT: block-diagonal orthogonal rotations of the weights", 1e-3, {"oft_block_size": 32, "r": 0},
        {"oft_block_size": Choice((8, 16, 32))}, limits={"r": {"min": 0}}),
    Row("OSF", "OSF: orthogonal subspace fine-tuning of every linear layer", 1e-4, {}, {},
        lr_range=(1e-5, 1e-3)),
    Row("PEANUT", "PEANuT: a small non-linear network of each weight", 1e-3, {"r": 32}, {"r": Choice((8, 16, 32))}),
    Row("P_TUNING", "P-tuning: a soft prompt produced by a trained MLP prompt encoder (positions removed from the "
        "output)", 1e-2, {"num_virtual_tokens": 20, "encoder_hidden_size": 128},
        {"num_virtual_tokens": Choice((5, 10, 20, 50))}, lr_range=(1e-3, 1e-1), targets="prompt"),
    Row("POLY", "Poly: a mixture of LoRA skills routed per task (one task here)", 1e-3, {"r": 8, "n_skills": 4},
        {"n_skills": Choice((1, 2, 4, 8))}, single_task=True),
    Row("PSOFT", "PSOFT: orthogonal updates in the weights' principal subspace", 1e-3,
        {"r": Fit(int, at_most(32, min), "subspace rank (unset: 32, or the layer's smaller side if smaller)")},
        {"r": Choice((None, 8, 16))}),
    Row("PVERA", "PVeRA: VeRA with probabilistic shared projections", 5e-3, {"r": 256},
        {"r": Choice((64, 256, 1024))}, lr_range=(1e-3, 5e-2)),
    # The update is scaled by randlora_alpha / r: 20 here (PEFT's own advice, alpha = 20 x r; its fixed default
    # 640 gives 80 at r=8). At 5e-3 the updates grew to 10x the weights on MiniLM x WNUT-16 (dev F1 0 at every
    # rate in 2e-3..4e-2); 5e-4 learns (dev F1 0.40).
    Row("RANDLORA", "RandLoRA: full-rank updates from shared random bases", 5e-4,
        {"r": 32, "randlora_alpha": Fit(int, times(20, "r"), "scaling coefficient (unset: 20 x r, so the update's "
                                                               "scale randlora_alpha / r is 20 at every rank)")},
        {"r": Choice((8, 16, 32))}, lr_range=(1e-4, 2e-3)),
    Row("ROAD", "RoAd: trained 2-D rotations of output pairs", 5e-3,
        {"variant": "road_1", "group_size": Fit(int, common_divisor(64, "out"),
                                                "rotation group size (unset: the largest ≤ 64 dividing every output width)")},
        {"variant": Choice(("road_1", "road_2", "road_4"))}, lr_range=(1e-3, 5e-2)),
    Row("SHADOW", "ShadowPEFT: a small parallel shadow network beside the frozen layers", 1e-3, {"r": 8},
        {"r": _RANKS}, targets="blocks"),
    Row("SHIRA", "SHiRA: a sparse trained subset of each weight", 1e-3,
        {"r": Fit(int, at_most(32, lambda i, o: i * o / (i + o)),
                  "sparsity as a LoRA rank: r·(in+out) weights per layer (unset: 32, or fewer where a layer is small)")},
        {"r": Choice((None, 8, 16))}),
    Row("SUPERTUNING", "SuperTuning: a sparse selection of each weight trained", 1e-3, {"sparsity": 0.99},
        {"sparsity": Choice((0.95, 0.99, 0.999))}, limits={"sparsity": {"min": 0, "below": 1}}),
    Row("TINYLORA", "TinyLoRA: LoRA through a tiny trained vector and fixed projections", 5e-3, {"r": 2, "u": 64},
        {"u": Choice((16, 64, 256))}, lr_range=(1e-3, 5e-2)),
    Row("UNILORA", "Uni-LoRA: every layer's LoRA from one shared trained vector", 5e-3, {"r": 4, "theta_d_length": 256},
        {"theta_d_length": Choice((64, 256, 1024))}, lr_range=(1e-3, 5e-2)),
    Row("VBLORA", "VB-LoRA: LoRA factors composed from a shared vector bank", 5e-3,
        {"r": 4, "num_vectors": 256,
         "vector_length": Fit(int, common_divisor(256), "bank vector length (unset: the largest ≤ 256 dividing every adapted width)")},
        {"num_vectors": Choice((64, 256, 1024))}, lr_range=(1e-3, 5e-2)),
    Row("VERA", "VeRA: shared frozen random projections with trained scaling vectors", 1e-2, {"r": 256},
        {"r": Choice((64, 256, 1024))}, lr_range=(1e-3, 1e-1)),
    Row("WAVEFT", "WaveFT: a few trained wavelet coefficients of each weight update", 5e-3,
        {"n_frequency": Fit(int, at_most(2592, lambda i, o: i * o),
                            "trained coefficients per layer (unset: 2592, or the layer's size if smaller)")},
        {"n_frequency": Choice((None, 256, 1024))}, lr_range=(1e-3, 5e-2)),
)

# PEFT types peftner runs, and the method that runs each: hand-written files first (the two PEFTNER_*
# types are peftner's own tuners, registered with PEFT by peftner.tuners.registry), then the rows.
COVERED: dict[str, str] = {"LORA": "lora", "IA3": "ia3", "PROMPT_TUNING": "prompt",
                           "PEFTNER_BOTTLENECK": "adapter", "PEFTNER_PTUNING_V2": "ptuning_v2",
                           **{row.peft_type: row.name for row in ROWS}}

REFUSED: dict[str, str] = {
    "PREFIX_TUNING": "PEFT's prefix tuning passes its prefixes as past_key_values, which token-classification "
                     "models do not accept; use ptuning_v2 (peftner's deep prefixes in every attention layer)",
    "MULTITASK_PROMPT_TUNING": "it needs a task id per example; with the one task of a NER run it is prompt tuning: "
                               "use prompt",
    "CARTRIDGE": "it trains a key/value cache prefix for generation; for token classification use ptuning_v2 "
                 "(trained key/value prefixes in every layer)",
    "CPT": "context-aware prompt tuning is defined for causal language modelling only (PEFT accepts task_type "
           "CAUSAL_LM only)",
    "ADAPTION_PROMPT": "LLaMA-Adapter's gated prompts exist for LLaMA-style causal-LM attention only and its "
                       "config cannot train the classifier head (no modules_to_save); use lora or ptuning_v2",
    "XLORA": "X-LoRA mixes LoRA adapters that are already trained (its config lists them); train lora first",
    "TRAINABLE_TOKENS": "it trains chosen embedding rows only and its config cannot train the classifier head "
                        "(no modules_to_save), so the tags could not be learned; use lora",
}


# --------------------------------------------------------------------------- targets


def _matches(name: str, targets) -> bool:
    """PEFT's rule: a regex string must match the whole name, a list entry is a name suffix."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def layer_dims(model, targets) -> list[tuple[int, int]]:
    """(in, out) widths of the linear layers ``targets`` adapts (what a :class:`Fit` rule sees)."""
    from peftner.models.facts import facts_of

    dims = []
    for name in facts_of(model).linear:
        if _matches(name, targets):
            module = model.get_submodule(name)
            if hasattr(module, "in_features"):
                dims.append((module.in_features, module.out_features))
            else:  # GPT-2's Conv1D: weight (in, out)
                dims.append(tuple(module.weight.shape))
    return dims


def norm_modules(model) -> list[str]:
    """Distinct last names of the backbone's normalisation layers (LN tuning's targets)."""
    head = set(head_module_names(model))
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
             if n and n.split(".", 1)[0] not in head and re.search(r"(LayerNorm|RMSNorm)$", type(m).__name__)}
    return sorted(names)


def block_regex(model) -> str:
    """Regex of the backbone's transformer blocks (``encoder.layer.N`` / ``layers.N``): ShadowPEFT's targets."""
    from peftner.models.facts import facts_of

    layers = facts_of(model).num_layers
    for name, module in model.named_modules():
        if type(module).__name__ == "ModuleList" and len(module) == layers and name:
            return rf"{re.escape(name)}\.\d+"
    raise PeftnerError(f"shadow: no list of {layers} transformer blocks found in this "
                       f"{model.config.model_type} model")


def row_for_model(row: Row):
    """``for_model``: linear targets resolved like LoRA's (layout, else PEFT's map for the type) and
    checked from the model's config, before data loads; norm and block targets need the built model."""

    def for_model(config, facts):
        from peftner.methods.targets import lora_targets

        if row.targets != "linear":
            return config
        return dataclasses.replace(config, target_modules=lora_targets(
            facts, config.target_modules, row.name, peft_name=row.peft_type.replace("_", "")))

    return for_model


def resolved_targets(row: Row, model, config):
    """The targets ``row`` adapts in ``model`` (also for a --peft-config file that names none)."""
    if row.targets == "norms":
        return list(config.target_modules or norm_modules(model))
    if row.targets == "blocks":
        return config.target_modules or block_regex(model)
    from peftner.methods.base import resolved

    targets = resolved(METHODS_BY_TYPE[row.peft_type], model, config).target_modules
    return targets if isinstance(targets, str) else list(targets)


# --------------------------------------------------------------------------- method of a row


def row_apply(row: Row):
    def apply(model, config):
        from peft import PEFT_TYPE_TO_CONFIG_MAPPING, TaskType

        from peftner.tuners import get_peft_model

        knobs = {k: getattr(config, k) for k in row.knobs}
        build = None
        if row.targets == "prompt":  # virtual tokens: PEFT needs the widths; their output rows are removed
            from peftner.models.facts import facts_of
            from peftner.tuners.prompt import PromptTokenClassifier

            facts, build = facts_of(model), PromptTokenClassifier
            where = {"token_dim": facts.token_dim, "num_layers": facts.num_layers,
                     "num_attention_heads": facts.num_heads}
        else:
            targets = resolved_targets(row, model, config)
            dims = layer_dims(model, targets) if row.targets == "linear" else []
            for key, spec in row.knobs.items():
                if isinstance(spec, Fit) and knobs[key] is None:
                    knobs[key] = spec.rule(dims, knobs)
            where = {"target_modules": targets}
        config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[row.peft_type]

        def make_config():
            peft_config = config_cls(task_type=TaskType.TOKEN_CLS, modules_to_save=head_module_names(model),
                                     **where, **knobs, **row.fixed)
            if build is not None:  # what get_peft_model records, for a model class it does not know
                peft_config.base_model_name_or_path = model.__dict__.get("name_or_path") or None
            return peft_config

        model = get_peft_model(model, make_config, row.name, build=build)
        if row.single_task:
            from peftner.tuners import single_task

            single_task(model)
        return model

    return apply


def _help(peft_type: str, name: str) -> str:
    """The first sentence of PEFT's own help for a config field."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    fields = {f.name: f for f in dataclasses.fields(PEFT_TYPE_TO_CONFIG_MAPPING[peft_type])}
    text = " ".join(str(fields[name].metadata.get("help", "")).split()) if name in fields else ""
    return re.split(r"(?<=[a-z0-9)])\. ", text)[0].rstrip(".")[:200]


TARGET_HELP = {
    "linear": "module-name suffixes to adapt; unset or query-value: the attention query/value projections (the "
              "layout's, else PEFT's default for the type); all-linear: every linear layer of the backbone",
    "norms": "names of the normalisation layers to train (unset: every LayerNorm / RMSNorm of the backbone)",
    "blocks": "regex of the transformer blocks to accompany (unset: all of them)",
}


def _targets_field(row: Row) -> list:
    if row.targets == "prompt":  # nothing is adapted: the prompt goes before the input
        return []
    kind = str if row.targets == "blocks" else list[str]
    return [("target_modules", kind | None, field(default=None, metadata={"help": TARGET_HELP[row.targets]}))]


def config_class(row: Row) -> type:
    fields = _targets_field(row)
    for key, default in row.knobs.items():
        kind = default.type if isinstance(default, Fit) else type(default)
        limits = row.limits.get(key, {"min": 1} if kind is int else {"min": 0} if kind is float else {})
        if isinstance(default, Fit):
            fields.append((key, kind | None, field(default=None, metadata={"help": default.help, **limits})))
        else:
            fields.append((key, kind, field(default=default, metadata={
                "help": functools.partial(_help, row.peft_type, key), **limits})))  # PEFT is imported when shown
    space = {"learning_rate": LogUniform(*row.lr_range), **row.space}
    camel = "".join(part.title() for part in row.name.split("_"))
    cls = dataclasses.make_dataclass(f"{camel}MethodConfig", fields, bases=(MethodConfig,), namespace={
        "train_defaults": {"learning_rate": row.learning_rate}, "search_space": space,
        "__doc__": f"{row.summary} (PEFT's {row.peft_type})."})
    cls.__module__ = __name__
    return cls


def method_of(row: Row) -> Method:
    return Method(name=row.name, summary=f"{row.summary}, head trained", config_cls=config_class(row),
                  apply=row_apply(row), for_model=row_for_model(row), compared=False)


METHODS_BY_TYPE: dict[str, Method] = {row.peft_type: method_of(row) for row in ROWS}
PEFT_TYPE_METHODS: tuple[Method, ...] = tuple(METHODS_BY_TYPE.values())


def refusal(peft_type: str) -> str | None:
    """The one-line reason a PEFT type is not run, or None."""
    reason = REFUSED.get(peft_type)
    return f"{peft_type}: {reason}" if reason else None

