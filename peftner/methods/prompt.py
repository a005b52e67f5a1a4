"""Prompt tuning (Lester et al. 2021): trained soft-prompt embeddings prepended to the input.

Uses PEFT's ``PromptTuningConfig``; :class:`~peftner.tuners.prompt.PromptTokenClassifier`
removes the virtual positions from logits and loss so the method obeys the shared contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, head_module_names
from peftner.methods.space import Choice, LogUniform

PROMPT_INITS = ("sample_vocab", "random")


@dataclass
class PromptMethodConfig(MethodConfig):
    num_virtual_tokens: int = field(default=20, metadata={"min": 1, "help": "soft-prompt length (input positions it uses)"})
    # Lester et al. initialise the prompt from embeddings of sampled vocabulary tokens.
    prompt_init: str = field(default="sample_vocab", metadata={"choices": PROMPT_INITS, "help": f"one of {', '.join(PROMPT_INITS)}"})
    # Lester et al. use 0.3 with Adafactor on T5; with AdamW on BERT-size encoders rates around
    # 1e-2..3e-2 are the usual choice, far above LoRA's.
    train_defaults: ClassVar[dict] = {"learning_rate": 3e-2}

    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-3, 1e-1), "num_virtual_tokens": Choice((5, 10, 20, 50))}

def apply_prompt(model, config: PromptMethodConfig):
    from peft import PromptTuningConfig, TaskType

    from peftner.tuners import get_peft_model
    from peftner.tuners.prompt import PromptTokenClassifier

    from peftner.models.facts import facts_of

    facts = facts_of(model)  # the width PEFT would look for under config names DistilBERT does not use

    def make_config():
        peft_config = PromptTuningConfig(
            task_type=TaskType.TOKEN_CLS, num_virtual_tokens=config.num_virtual_tokens,
            prompt_tuning_init=config.prompt_init.upper(), modules_to_save=head_module_names(model),
            token_dim=facts.token_dim, num_layers=facts.num_layers, num_attention_heads=facts.num_heads)
        # What get_peft_model records, for a model class it does not know.
        peft_config.base_model_name_or_path = model.__dict__.get("name_or_path") or None
        return peft_config

    return get_peft_model(model, make_config, "prompt", build=PromptTokenClassifier)


PROMPT = Method(
    name="prompt",
    summary="prompt tuning: a trained soft prompt before the input (positions removed from the output), head trained",
    config_cls=PromptMethodConfig,
    apply=apply_prompt,
)
