"""LoRA (Hu et al. 2021): a trainable low-rank update ``B·A`` beside frozen weight matrices."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.methods.base import Method, MethodConfig, head_module_names


@dataclass
class LoraMethodConfig(MethodConfig):
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # Hu et al. adapt the attention query and value projections; "all-linear": every linear layer.
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])


def peft_targets(names: list[str]):
    """PEFT's target list; ``all-linear`` alone is PEFT's keyword for every linear layer but the head."""
    return "all-linear" if list(names) == ["all-linear"] else list(names)


def lora_peft_config(config: LoraMethodConfig, model):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.TOKEN_CLS, r=config.r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=peft_targets(config.target_modules),
                      modules_to_save=head_module_names(model))


def apply_lora(model, config: LoraMethodConfig):
    from peft import get_peft_model

    return get_peft_model(model, lora_peft_config(config, model))


LORA = Method(
    name="lora",
    summary="LoRA low-rank updates on attention query/value, head trained",
    config_cls=LoraMethodConfig,
    apply=apply_lora,
    train_defaults={"learning_rate": 1e-3},
)
