"""Linear probe: the backbone is frozen and only the classification head trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, freeze_all_but, head_prefixes
from peftner.methods.space import LogUniform


@dataclass
class HeadConfig(MethodConfig):
    """No knobs: the head is the only trainable module."""

    # A lone linear layer on frozen features tolerates (and needs) a much larger step than fine-tuning.
    train_defaults: ClassVar[dict] = {"learning_rate": 5e-3}
    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-4, 3e-2)}


def apply_head(model, config: HeadConfig):
    heads = head_prefixes(model)
    return freeze_all_but(model, lambda name: name.startswith(heads))


HEAD = Method(
    name="head",
    summary="linear probe: frozen backbone, only the classifier head trains",
    config_cls=HeadConfig,
    apply=apply_head,
    is_peft=False,
    saves_trained_only=True,
    compared=False,
)
