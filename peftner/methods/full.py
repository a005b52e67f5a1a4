"""Full fine-tuning: every weight trains (optionally only the top K encoder layers and the head).

Its learning rate is the shared default of :class:`peftner.config.TrainConfig` (5e-5, BERT's
fine-tuning rate), so it declares no ``train_defaults``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from peftner.methods.base import Method, MethodConfig, freeze_all_but, head_prefixes
from peftner.methods.space import LogUniform


@dataclass
class FullConfig(MethodConfig):
    train_top_layers: int | None = field(default=None, metadata={"min": 0,
        "help": "train only the top K encoder layers and the head (None: every layer)"})
    # The committed sweep's winner on WNUT-16 (benchmarks/results/wnut16_tuned; test_tune checks it):
    # 8e-5 beat the usual 5e-5 on dev (0.567 vs 0.479 over 5 epochs).
    train_defaults: ClassVar[dict] = {"learning_rate": 8e-5}
    # peftner tune: learning rate and the main structural knob (docs/methods.md lists them).
    search_space: ClassVar[dict] = {"learning_rate": LogUniform(1e-5, 3e-4)}


def _layer_index(name: str) -> int | None:
    match = re.search(r"\.(?:layers?|h|blocks)\.(\d+)\.", name)  # BERT/LLaMA/ModernBERT, GPT-2, ...
    return int(match.group(1)) if match else None


def apply_full(model, config: FullConfig):
    if config.train_top_layers is None:
        return freeze_all_but(model, lambda name: True)
    n_layers = model.config.num_hidden_layers
    k = config.train_top_layers
    if not 0 <= k <= n_layers:
        from peftner.errors import PeftnerError

        raise PeftnerError(f"--train-top-layers must be between 0 and {n_layers}, got {k}")
    heads = head_prefixes(model)

    def trainable(name):
        index = _layer_index(name)
        return name.startswith(heads) or (index is not None and index >= n_layers - k)

    return freeze_all_but(model, trainable)


FULL = Method(
    name="full",
    summary="full fine-tuning of every weight (or of the top K layers with --train-top-layers)",
    config_cls=FullConfig,
    apply=apply_full,
    is_peft=False,
)
