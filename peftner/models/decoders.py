"""Decoder LLMs as taggers: lifting the causal mask (``--bidirectional``) and restoring it on reload."""

from __future__ import annotations

import json
from pathlib import Path

from peftner.models.facts import decoder_attention_modules


# ----------------------------------------------------------------------------- decoders
def make_bidirectional(model) -> int:
    """Let every position attend to every other: transformers' ``is_causal`` switched off.

    ``create_causal_mask`` returns a bidirectional mask when ``config.is_causal`` is False, and the
    attention functions take ``module.is_causal`` when no mask is passed (SDPA/flash); both are set.
    Returns the number of attention modules changed; 0 means the model was not causal.
    """
    modules = decoder_attention_modules(model)
    for module in modules:
        module.is_causal = False
    configs = {id(c): c for c in (getattr(m, "config", None) for m in model.modules()) if c is not None}
    for config in configs.values():
        config.is_causal = False
    return len(modules)


def restore_bidirectional(model, adapter_dir) -> None:
    """Re-apply ``--bidirectional`` on reload: the run saved ``is_causal: false`` in the adapter's config.json."""
    path = Path(adapter_dir) / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if saved.get("is_causal") is False:
        make_bidirectional(model)
