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
    # The sweep's learning rate (1.23e-3), rounded to two significant digits.
    train_defaults: ClassVar[dict] = {"learning_rate": 1.2e-3}

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


def lora_apply(name: str, prepare=None):
    """``apply`` of a LoRA method: ``prepare`` readies a quantized backbone first (int8_lora, qlora)."""

    def apply(model, config: LoraMethodConfig):
        from peft import LoraConfig, TaskType

        from peftner.tuners import get_peft_model

        if prepare is not None:
            model = prepare(model)
        config = resolved(LORA, model, config)
        targets = config.target_modules  # suffixes, or one regex for all-linear
        return get_peft_model(model, lambda: LoraConfig(
            task_type=TaskType.TOKEN_CLS, r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=targets if isinstance(targets, str) else list(targets),
            modules_to_save=head_module_names(model)), name)

    return apply


LORA = Method(
    name="lora",
    summary="LoRA low-rank updates on every linear layer, head trained",
    config_cls=LoraMethodConfig,
    apply=lora_apply("lora"),
    for_model=lora_for_model,
)
