"""Prompt tuning (Lester et al. 2021): trained soft-prompt embeddings prepended to the input.

Uses PEFT's ``PromptTuningConfig``; :class:`~peftner.tuners.prompt.PromptTokenClassifier`
removes the virtual positions from logits and loss so the method obeys the shared contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names

PROMPT_INITS = ("sample_vocab", "random")


@dataclass
class PromptMethodConfig(MethodConfig):
    num_virtual_tokens: int = field(default=20, metadata={"help": "soft-prompt length (input positions it uses)"})
    # Lester et al. initialise the prompt from embeddings of sampled vocabulary tokens.
    prompt_init: str = field(default="sample_vocab", metadata={"help": f"one of {', '.join(PROMPT_INITS)}"})

    def __post_init__(self):
        if self.num_virtual_tokens < 1:
            raise PeftnerError(f"--num-virtual-tokens must be at least 1, got {self.num_virtual_tokens}")
        if self.prompt_init not in PROMPT_INITS:
            raise PeftnerError(f"--prompt-init must be one of {', '.join(PROMPT_INITS)}, got {self.prompt_init!r}")


def apply_prompt(model, config: PromptMethodConfig):
    from peft import PromptTuningConfig, TaskType

    from peftner.tuners.prompt import PromptTokenClassifier

    peft_config = PromptTuningConfig(
        task_type=TaskType.TOKEN_CLS, num_virtual_tokens=config.num_virtual_tokens,
        prompt_tuning_init=config.prompt_init.upper(), modules_to_save=head_module_names(model))
    # What get_peft_model records, for a model class it does not know.
    peft_config.base_model_name_or_path = model.__dict__.get("name_or_path") or None
    return PromptTokenClassifier(model, peft_config)


PROMPT = Method(
    name="prompt",
    summary="prompt tuning: a trained soft prompt before the input (positions removed from the output), head trained",
    config_cls=PromptMethodConfig,
    apply=apply_prompt,
    # Lester et al. use 0.3 with Adafactor on T5; with AdamW on BERT-size encoders rates around
    # 1e-2..3e-2 are the usual choice, far above LoRA's.
    train_defaults={"learning_rate": 3e-2},
)
