"""Linear probe: the backbone is frozen and only the classification head trains."""

from __future__ import annotations

from dataclasses import dataclass

from peftner.methods.base import Method, MethodConfig, freeze_all_but, head_module_names


@dataclass
class HeadConfig(MethodConfig):
    """No knobs: the head is the only trainable module."""


def apply_head(model, config: HeadConfig):
    heads = tuple(f"{h}." for h in head_module_names(model))
    return freeze_all_but(model, lambda name: name.startswith(heads))


HEAD = Method(
    name="head",
    summary="linear probe: frozen backbone, only the classifier head trains",
    config_cls=HeadConfig,
    apply=apply_head,
    # A lone linear layer on frozen features tolerates (and needs) a much larger step than fine-tuning.
    train_defaults={"learning_rate": 5e-3},
    is_peft=False,
    saves_trained_only=True,
)
