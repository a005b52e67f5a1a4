"""Decoder LLMs as taggers: lifting the causal mask (``--bidirectional``, or only from layer K on with
``--bidirectional-from K``) and restoring it on reload."""

from __future__ import annotations

import json
from pathlib import Path

from peftner.models.facts import decoder_attention_modules

FROM_LAYER_KEY = "peftner_bidirectional_from"  # in config.json: the first layer without the causal mask


def make_bidirectional(model, from_layer: int = 0) -> int:
    """Let every position attend to every other, in every layer (``from_layer`` 0) or from layer
    ``from_layer`` on (the layers below keep the causal mask). Returns the number of attention modules
    changed; 0 means the model was not causal.

    Every layer: transformers' ``is_causal`` switched off. ``create_causal_mask`` returns a
    bidirectional mask when ``config.is_causal`` is False, and the attention functions take
    ``module.is_causal`` when no mask is passed (SDPA/flash); both are set.

    From layer K: the model still builds its causal mask (for layers 0..K-1); the attention modules
    of layers K.. get ``is_causal = False`` and, through a forward pre-hook, the bidirectional padding
    mask (``create_bidirectional_mask`` of the input's attention mask) instead of the causal one.
    Sliding-window layers among them see the whole sentence too. ``config.peftner_bidirectional_from``
    records K, so ``save_pretrained`` writes it and :func:`restore_bidirectional` re-applies it.
    """
    modules = decoder_attention_modules(model)
    configs = {id(c): c for c in (getattr(m, "config", None) for m in model.modules()) if c is not None}
    if from_layer == 0:
        for module in modules:
            module.is_causal = False
        for config in configs.values():
            config.is_causal = False
        return len(modules)
    if not 0 < from_layer < len(modules):
        raise ValueError(f"from_layer must be in 0..{len(modules) - 1}, got {from_layer}")
    _padding_mask_recorder(model)
    for module in modules[from_layer:]:
        module.is_causal = False
        module.register_forward_pre_hook(_bidirectional_mask, with_kwargs=True)
    for config in configs.values():
        setattr(config, FROM_LAYER_KEY, from_layer)
    return len(modules) - from_layer


def _padding_mask_recorder(model) -> None:
    """Keep the 2-D attention mask of each forward call where the attention pre-hooks can read it."""
    modules = decoder_attention_modules(model)
    state = {"mask": None}
    outer = _outermost_with(model, modules)

    def record(_module, args, kwargs):
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        state["mask"] = mask if mask is None or mask.dim() == 2 else None

    outer.register_forward_pre_hook(record, with_kwargs=True)
    for module in modules:
        module._peftner_padding = state


def _outermost_with(model, modules):
    """The backbone (the module right under the head model) that holds the attention modules."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    backbone = getattr(model, prefix, None) if prefix else None
    return backbone if backbone is not None else model


def _bidirectional_mask(module, args, kwargs):
    from transformers.masking_utils import create_bidirectional_mask

    hidden = kwargs.get("hidden_states", args[0] if args else None)
    kwargs["attention_mask"] = create_bidirectional_mask(
        config=module.config, inputs_embeds=hidden, attention_mask=module._peftner_padding["mask"])
    return args, kwargs


def restore_bidirectional(model, adapter_dir) -> None:
    """Re-apply ``--bidirectional`` / ``--bidirectional-from`` on reload, as the run saved it in the
    adapter's config.json (``is_causal: false`` or ``peftner_bidirectional_from: K``)."""
    path = Path(adapter_dir) / "config.json"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if saved.get("is_causal") is False:
        make_bidirectional(model)
    elif isinstance(saved.get(FROM_LAYER_KEY), int) and saved[FROM_LAYER_KEY] > 0:
        make_bidirectional(model, saved[FROM_LAYER_KEY])
