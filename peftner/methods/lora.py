"""LoRA (Hu et al. 2021): a trainable low-rank update ``B·A`` beside frozen weight matrices.

Also the code the quantized-backbone variants (``int8_lora``, ``qlora``) share: the quantization
itself happens in ``from_pretrained`` (``Method.load_kwargs`` returns the ``BitsAndBytesConfig`` of
:func:`peftner.models.loading.bitsandbytes_config`, which keeps the head a full-precision ``nn.Linear``
that can train); LoRA is then applied exactly as for the ``lora`` method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names, resolved
from peftner.methods.space import Bundle, Choice, LogUniform
from peftner.methods.targets import lora_targets


@dataclass
class LoraMethodConfig(MethodConfig):
    r: int = field(default=4, metadata={"min": 1, "help": "rank of the update B·A"})
    lora_alpha: int = field(default=16, metadata={"min": 1, "help": "scaling: the update is multiplied by lora_alpha / r"})
    lora_dropout: float = field(default=0.1, metadata={"min": 0, "below": 1, "help": "dropout on the input of the update"})
    # Defaults (rank, targets, learning rate): the committed sweep's winner on WNUT-16
    # (benchmarks/results/wnut16_tuned; test_tune checks they agree). "query-value" (or unset) picks
    # the architecture's query/value projections, as Hu et al. (BERT: query,value; LLaMA:
    # q_proj,v_proj; GPT-2: c_attn; docs/models.md).
    target_modules: list[str] | None = field(default_factory=lambda: ["all-linear"], metadata={
        "help": "module-name suffixes that get an update; all-linear: every linear layer of the backbone; "
                "query-value: the architecture's attention query/value projections (docs/models.md)"})
    # LoRA's variants (PEFT's LoraConfig options); peftner.tuners.lora_init says how each is applied.
    use_dora: bool = field(default=False, metadata={
        "help": "DoRA (Liu et al. 2024): train each adapted weight's magnitude separately from its direction"})
    use_rslora: bool = field(default=False, metadata={
        "help": "rank-stabilised LoRA (Kalajdzievski 2023): scale the update by lora_alpha / sqrt(r)"})
    init_lora_weights: str = field(default="default", metadata={
        "help": "PEFT's initialisation: default (B = 0), gaussian, orthogonal, mica, pissa, pissa_niter_K (fast "
                "SVD, K iterations), olora, eva / corda / lora_ga (from a pass over training batches), loftq "
                "(refused: it rewrites the backbone)"})
    init_batches: int = field(default=16, metadata={"min": 1,
        "help": "training batches eva, corda and lora_ga read before the first step"})
    # The sweep's learning rate (1.23e-3), rounded to two significant digits.
    train_defaults: ClassVar[dict] = {"learning_rate": 1.2e-3}
    quantized: ClassVar[bool] = False  # int8_lora / qlora: initialisations that rewrite weights are refused

    def __post_init__(self):
        from peftner.tuners.lora_init import check_init

        super().__post_init__()
        check_init(self.init_lora_weights, self.use_dora, self.quantized)

    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {
        "learning_rate": LogUniform(1e-4, 5e-3),
        "r": Choice((4, 8, 16, 32)),
        # "query,value": the architecture's query/value projections (BERT: query, value).
        "targets": Bundle.of({"query,value": {"target_modules": "query-value"},
                              "query,key,value": {"target_modules": "query,key,value"},
                              "all-linear": {"target_modules": "all-linear"}}),
    }

def lora_for_model(config: LoraMethodConfig, facts):
    return dataclasses.replace(config, target_modules=lora_targets(facts, config.target_modules))


def lora_config(model, config: LoraMethodConfig, init=None):
    """PEFT's ``LoraConfig`` of ``config`` on ``model`` (``init``: the initialisation PEFT runs now)."""
    from peft import LoraConfig, TaskType
    from peft.tuners.lora.config import CordaConfig, EvaConfig, LoraGAConfig

    from peftner.tuners.lora_init import peft_value

    targets = config.target_modules  # suffixes, or one regex for all-linear
    init = config.init_lora_weights if init is None else init
    extra = {"eva": {"eva_config": EvaConfig()}, "corda": {"corda_config": CordaConfig()},
             "lora_ga": {"lora_ga_config": LoraGAConfig()}}.get(init, {})
    return LoraConfig(
        task_type=TaskType.TOKEN_CLS, r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets if isinstance(targets, str) else list(targets),
        modules_to_save=head_module_names(model), use_dora=config.use_dora, use_rslora=config.use_rslora,
        init_lora_weights=peft_value(init), **extra)


def lora_apply(name: str, prepare=None):
    """``apply`` of a LoRA method: ``prepare`` readies a quantized backbone first (int8_lora, qlora).

    CorDA and LoRA-GA start as PEFT's default here and are built again by :func:`lora_initialize`;
    an initialisation that rewrites the frozen weights keeps their originals for saving
    (:mod:`peftner.tuners.lora_init`).
    """

    def apply(model, config: LoraMethodConfig):
        from peftner.tuners import get_peft_model
        from peftner.tuners.lora_init import remember_starting_point, rewrites_base, snapshot_weights

        if prepare is not None:
            model = prepare(model)
        config = resolved(LORA, model, config)
        if config.use_dora and getattr(model, "is_loaded_in_8bit", False) and model.device.type == "cpu":
            raise PeftnerError(f"{name} --use-dora: on CPU, bitsandbytes' 8-bit layers lose their scales once DoRA "
                               "has read the weights, and the first step fails; use qlora or lora with --use-dora "
                               "(or run on a GPU)")
        init = config.init_lora_weights
        later = init in ("corda", "lora_ga")  # needs the data pass first
        original = snapshot_weights(model) if rewrites_base(init) and not later else None
        model = get_peft_model(model, lambda: lora_config(model, config, "default" if later else None), name)
        return remember_starting_point(model, original) if original is not None else model

    return apply


def lora_initialize(model, config: LoraMethodConfig, batches):
    """``Method.initialize``: the data pass of eva / corda / lora_ga (others: the model unchanged)."""
    from peftner.tuners.lora_init import DATA_DRIVEN, data_pass

    if config.init_lora_weights not in DATA_DRIVEN:
        return model
    peft_config = model.peft_config["default"]
    if config.init_lora_weights != "eva":  # built again from the backbone: the real initialisation this time
        peft_config = lora_config(model.get_base_model(), config)
        peft_config.target_modules = model.peft_config["default"].target_modules  # resolved when applied
    return data_pass(model, peft_config, batches, config.init_batches)


def lora_as_saved(model, config: LoraMethodConfig):
    """``Method.as_saved``: an initialisation that rewrote the frozen weights becomes a plain LoRA delta."""
    from peftner.tuners.lora_init import to_plain_lora

    return to_plain_lora(model)


LORA = Method(
    name="lora",
    summary="LoRA low-rank updates on every linear layer, head trained",
    config_cls=LoraMethodConfig,
    apply=lora_apply("lora"),
    for_model=lora_for_model,
    initialize=lora_initialize,
    as_saved=lora_as_saved,
)
