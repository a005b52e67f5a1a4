"""The method contract shared by every fine-tuning method.

A method is a name, a config dataclass (its knobs, with defaults from the literature), training
defaults that differ from the shared ones (mostly the learning rate), and ``apply``: a function that
turns a freshly loaded token-classification model into the model to train. Everything else — data,
the training loop, metrics, saving — is the same for every method, so a comparison differs only in
the method.

Contract for ``apply(model, config) -> model``:
  * the classifier head stays trainable (and, for PEFT methods, is saved with the adapter);
  * ``model(input_ids=..., attention_mask=..., labels=...)`` returns ``.loss`` and ``.logits`` with
    one row per input position (methods that add virtual tokens remove them again);
  * ``model.save_pretrained(dir)`` writes safetensors that :func:`peftner.reuse` can load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

HEAD_NAMES = ("classifier",)


@dataclass
class MethodConfig:
    """Base class of method configs (empty: full fine-tuning has no knobs beyond the loop's)."""


@dataclass
class Method:
    name: str
    summary: str
    config_cls: type
    apply: Callable[[Any, Any], Any]
    train_defaults: dict = field(default_factory=dict)
    # Extra keyword arguments for ``from_pretrained`` (e.g. a quantization config), from the config.
    load_kwargs: Callable[[Any], dict] | None = None
    is_peft: bool = True
    # Non-PEFT methods that train a few tensors of the model (head, BitFit) save only those
    # (peftner.reuse.partial) instead of the whole model.
    saves_trained_only: bool = False

    def default_config(self):
        return self.config_cls()


def config_fields(config_cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_cls) if f.init]


def head_module_names(model) -> list[str]:
    """Names of the classification head modules (``classifier`` for BERT-style models)."""
    names = [n for n, _ in model.named_children() if n in HEAD_NAMES]
    if not names:
        raise ValueError(f"{type(model).__name__} has no classifier head named one of {HEAD_NAMES}")
    return names


def freeze_all_but(model, trainable: Callable[[str], bool]):
    """Set ``requires_grad`` from a predicate on parameter names; returns the model."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(trainable(name)))
    return model


# PEFT prompt-learning methods that prepend virtual tokens to the input (prefix tuning does not).
VIRTUAL_TOKEN_PEFT_TYPES = ("PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")


def virtual_positions(model) -> int:
    """Input positions a method prepends (soft prompts); windows must leave room for them."""
    config = getattr(model, "active_peft_config", None)
    if config is None or getattr(config, "peft_type", None) not in VIRTUAL_TOKEN_PEFT_TYPES:
        return 0
    return config.num_virtual_tokens * (getattr(config, "num_transformer_submodules", None) or 1)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    trainable = total = 0
    for parameter in model.parameters():
        n = parameter.numel()
        if parameter.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        trainable += n if parameter.requires_grad else 0
    return trainable, total
