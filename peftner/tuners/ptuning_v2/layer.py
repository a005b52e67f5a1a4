"""The P-tuning v2 layer: a BERT-family self-attention whose keys/values start with a trained prefix.

PEFT's prefix tuning hands the prefix to the model as ``past_key_values``, which BERT-family
encoders in transformers 5 no longer accept. Instead this layer wraps the self-attention module
and computes attention itself through the model's own attention backend
(``ALL_ATTENTION_FUNCTIONS``: eager, sdpa, ...), with the prefix concatenated to the keys and
values and the attention mask extended so every position may attend to it. Queries (and so the
outputs) stay one per input position.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.bert.modeling_bert import eager_attention_forward

from peft.tuners.tuners_utils import BaseTunerLayer

from .config import PtuningV2Config

_PROJECTIONS = ("query", "key", "value")


def supports_prefix(module: nn.Module) -> bool:
    """Whether ``module`` is a BERT-style self-attention (query/key/value Linears, head size, config)."""
    return (all(isinstance(getattr(module, n, None), nn.Linear) for n in _PROJECTIONS)
            and hasattr(module, "attention_head_size") and hasattr(module, "config"))


def extend_attention_mask(mask, num_prefix: int):
    """Prepend ``num_prefix`` always-visible key positions to a mask in any of the backends' forms."""
    if mask is None:
        return None  # nothing masked: the prefix is visible too
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 4):
        raise ValueError(f"P-tuning v2 cannot extend an attention mask of type {type(mask).__name__}; "
                         "use attn_implementation='sdpa' or 'eager'")
    if mask.dtype == torch.bool:
        visible = torch.ones((), dtype=torch.bool, device=mask.device)
    elif mask.dim() == 2 or not mask.is_floating_point():
        visible = torch.ones((), dtype=mask.dtype, device=mask.device)  # 2-D 1/0 padding mask
    else:
        visible = torch.zeros((), dtype=mask.dtype, device=mask.device)  # additive mask: 0 = attend
    prefix = visible.expand(*mask.shape[:-1], num_prefix)
    return torch.cat([prefix, mask], dim=-1)


class PtuningV2Layer(BaseTunerLayer):
    adapter_layer_names = ("ptuning_v2_prefix", "ptuning_v2_encoder")
    other_param_names = ("ptuning_v2_dropout",)

    def __init__(self, base_layer: nn.Module, shape: tuple[int, int, int] | None = None, **kwargs) -> None:
        """``shape``: (key/value heads, head size, hidden width); None reads a BERT-style self-attention."""
        self.base_layer = base_layer
        self.ptuning_v2_prefix = nn.ParameterDict({})
        self.ptuning_v2_encoder = nn.ModuleDict({})
        self.ptuning_v2_dropout = nn.ModuleDict({})
        self._disable_adapters = False
        self.merged_adapters = []
        base = self.get_base_layer()
        if shape is None:
            if not supports_prefix(base):
                raise TypeError(f"P-tuning v2 needs a BERT-style self-attention module, got {type(base).__name__}")
            shape = (base.key.out_features // base.attention_head_size, base.attention_head_size,
                     base.key.in_features)
        self.num_heads, self.head_size, self.width = shape

    def update_layer(self, adapter_name: str, config: PtuningV2Config, **kwargs) -> None:
        kv_size = 2 * self.num_heads * self.head_size  # keys and values of all heads
        if config.prefix_projection:
            width = self.width
            prefix = torch.randn(config.num_virtual_tokens, width)
            self.ptuning_v2_encoder[adapter_name] = nn.Sequential(
                nn.Linear(width, config.encoder_hidden_size), nn.Tanh(),
                nn.Linear(config.encoder_hidden_size, kv_size))
        else:
            # Liu et al.'s reference code trains the prefix keys/values directly, initialised N(0, 1).
            prefix = torch.randn(config.num_virtual_tokens, kv_size)
            self.ptuning_v2_encoder[adapter_name] = nn.Identity()
        self.ptuning_v2_prefix[adapter_name] = nn.Parameter(prefix)
        self.ptuning_v2_dropout[adapter_name] = nn.Dropout(config.prefix_dropout)
        self._move_adapter_to_device_of_base_layer(adapter_name, device=next(self.get_base_layer().parameters()).device)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def prefix_key_values(self, adapter_name: str, batch_size: int, dtype: torch.dtype):
        """Prefix keys and values of one adapter, each ``(batch, heads, num_virtual_tokens, head_size)``."""
        states = self.ptuning_v2_encoder[adapter_name](self.ptuning_v2_prefix[adapter_name])
        states = self.ptuning_v2_dropout[adapter_name](states).to(dtype)
        states = states.view(-1, 2, self.num_heads, self.head_size).permute(1, 2, 0, 3)
        keys, values = (s.unsqueeze(0).expand(batch_size, -1, -1, -1) for s in states)
        return keys, values


class PrefixSelfAttention(nn.Module, PtuningV2Layer):
    """BERT-family encoder self-attention with trained key/value prefixes."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: PtuningV2Config, **kwargs) -> None:
        super().__init__()
        PtuningV2Layer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, **kwargs):
        active = [n for n in self.active_adapters if n in self.ptuning_v2_prefix]
        attention = self.get_base_layer()
        if self.disable_adapters or not active:
            return self.base_layer(hidden_states, attention_mask=attention_mask, **kwargs)
        if kwargs.pop("cache", None) is not None or kwargs.pop("past_key_values", None) is not None:
            raise ValueError("P-tuning v2 supports encoders only (no key/value cache)")
        if kwargs.get("encoder_hidden_states") is not None:
            raise ValueError("P-tuning v2 supports self-attention only")

        # The same computation as BertSelfAttention.forward for an encoder, plus the prefix.
        batch_size, length = hidden_states.shape[:2]
        shape = (batch_size, length, -1, self.head_size)
        query = attention.query(hidden_states).view(shape).transpose(1, 2)
        keys = [attention.key(hidden_states).view(shape).transpose(1, 2)]
        values = [attention.value(hidden_states).view(shape).transpose(1, 2)]
        num_prefix = 0
        for name in active:
            prefix_keys, prefix_values = self.prefix_key_values(name, batch_size, query.dtype)
            keys.insert(0, prefix_keys)
            values.insert(0, prefix_values)
            num_prefix += prefix_keys.shape[2]
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            attention.config._attn_implementation, eager_attention_forward)
        output, weights = attention_interface(
            attention, query, torch.cat(keys, dim=2), torch.cat(values, dim=2),
            extend_attention_mask(attention_mask, num_prefix),
            dropout=attention.dropout.p if attention.training else 0.0,
            scaling=getattr(attention, "scaling", self.head_size ** -0.5),
            **kwargs,
        )
        return output.reshape(batch_size, length, -1).contiguous(), weights

    def __repr__(self) -> str:
        return "ptuning_v2." + super().__repr__()
