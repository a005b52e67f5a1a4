"""P-tuning v2 for any attention that calls transformers' attention interface (decoders, ModernBERT, ...).

Transformers 5 attention modules compute queries/keys/values (after rotary embeddings, cache
updates, ...) and then call ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation](module, q, k, v,
mask, ...)``. :class:`InterfacePrefixAttention` wraps such a module and gives it a private copy of
its config whose ``_attn_implementation`` is ``"peftner_prefix"``: :func:`prefix_attention` then
prepends the trained prefix to the keys and values, extends the mask so every query sees it, and
calls the implementation the model was using (sdpa, eager, ...). The rest of the model, and its
mask creation, are untouched. Prefix keys carry no position (like HF prefix tuning's cached keys);
with causal attention the prefix is visible to every position, as a prompt would be.
"""

from __future__ import annotations

import copy
import sys

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .layer import PtuningV2Layer, extend_attention_mask

IMPLEMENTATION = "peftner_prefix"


def _inner_attention(module):
    name = module.__dict__.get("_peftner_inner_attention", "sdpa")
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if name in ("eager", None) or name not in ALL_ATTENTION_FUNCTIONS:
        if eager is None:
            raise ValueError(f"P-tuning v2: no eager attention function for {type(module).__name__}")
        return eager
    return ALL_ATTENTION_FUNCTIONS[name]


def prefix_attention(module, query, key, value, attention_mask, **kwargs):
    """The model's own attention function, with the module's current prefix prepended to keys/values."""
    inner = _inner_attention(module)
    prefix = module.__dict__.get("_peftner_prefix")
    if prefix is None:
        return inner(module, query, key, value, attention_mask, **kwargs)
    prefix_keys, prefix_values = prefix
    num_prefix = prefix_keys.shape[2]
    if attention_mask is None and getattr(module, "is_causal", False) and query.shape[2] > 1:
        # the model relied on the kernel's is_causal flag; with a prefix the mask must be explicit
        q, k = query.shape[2], key.shape[2]
        attention_mask = torch.ones(q, k, dtype=torch.bool, device=query.device).tril(k - q)[None, None]
    if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4 and attention_mask.shape[0] == 1 \
            and query.shape[0] > 1:
        attention_mask = attention_mask.expand(query.shape[0], *attention_mask.shape[1:])
    kwargs["is_causal"] = False
    return inner(module, query, torch.cat([prefix_keys.to(key.dtype), key], dim=2),
                 torch.cat([prefix_values.to(value.dtype), value], dim=2),
                 extend_attention_mask(attention_mask, num_prefix), **kwargs)


AttentionInterface.register(IMPLEMENTATION, prefix_attention)


def attention_shape(config) -> tuple[int, int, int]:
    """(key/value heads, head size, hidden width) of a model config."""
    def first(*names):
        return next((getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None)

    heads = first("num_attention_heads", "n_head", "n_heads")
    hidden = first("hidden_size", "n_embd", "dim", "d_model")
    kv_heads = first("num_key_value_heads") or heads
    head_dim = first("head_dim") or hidden // heads
    return kv_heads, head_dim, hidden


def supports_interface(module: nn.Module) -> bool:
    """An attention module that reads its implementation from ``self.config`` (the interface users)."""
    config = getattr(module, "config", None)
    return config is not None and hasattr(config, "_attn_implementation") and hasattr(module, "is_causal")


def install(module: nn.Module) -> None:
    """Route ``module``'s attention through :func:`prefix_attention` (a private config copy)."""
    if module.__dict__.get("_peftner_inner_attention") is not None:
        return
    inner = module.config._attn_implementation or "eager"
    module.config = copy.copy(module.config)
    module.config._attn_implementation = IMPLEMENTATION
    module.__dict__["_peftner_inner_attention"] = inner


class InterfacePrefixAttention(nn.Module, PtuningV2Layer):
    """Any interface-calling attention module with trained key/value prefixes (one per key/value head)."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config, model_config) -> None:
        super().__init__()
        PtuningV2Layer.__init__(self, base_layer, shape=attention_shape(model_config))
        install(self.get_base_layer())
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def forward(self, *args, **kwargs):
        active = [n for n in self.active_adapters if n in self.ptuning_v2_prefix]
        if self.disable_adapters or not active:
            return self.base_layer(*args, **kwargs)
        hidden = args[0] if args else kwargs["hidden_states"]
        keys, values = [], []
        for name in active:
            prefix_keys, prefix_values = self.prefix_key_values(name, hidden.shape[0], hidden.dtype)
            keys.insert(0, prefix_keys)
            values.insert(0, prefix_values)
        attention = self.get_base_layer()
        attention.__dict__["_peftner_prefix"] = (torch.cat(keys, dim=2), torch.cat(values, dim=2))
        try:
            return self.base_layer(*args, **kwargs)
        finally:
            attention.__dict__.pop("_peftner_prefix", None)

    def __repr__(self) -> str:
        return "ptuning_v2." + super().__repr__()

