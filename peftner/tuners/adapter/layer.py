"""The bottleneck adapter layer: wraps an output projection ``nn.Linear`` and adds the adapter after it.

Placing the adapter right after the sub-layer's output projection (before dropout, the residual
connection and LayerNorm) is Houlsby et al.'s placement, and works for every encoder whose
sub-layers end in a ``Linear`` (BERT, RoBERTa, ELECTRA, DistilBERT, ...).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from peft.tuners.tuners_utils import BaseTunerLayer

from .config import BottleneckConfig

ACTIVATIONS = {"relu": nn.functional.relu, "gelu": nn.functional.gelu, "swish": nn.functional.silu,
               "tanh": torch.tanh}


def output_features(base: nn.Module) -> int:
    """Output width of a linear projection: ``nn.Linear`` or GPT-2's ``Conv1D`` (weight stored transposed)."""
    if isinstance(base, nn.Linear):
        return base.out_features
    if type(base).__name__ == "Conv1D" and hasattr(base, "nf"):
        return base.nf
    raise TypeError(f"bottleneck adapters wrap linear output projections, got {type(base).__name__}")


class BottleneckLayer(BaseTunerLayer):
    adapter_layer_names = ("bottleneck_down", "bottleneck_up")
    other_param_names = ("bottleneck_non_linearity",)

    def __init__(self, base_layer: nn.Module, **kwargs) -> None:
        self.base_layer = base_layer
        self.bottleneck_down = nn.ModuleDict({})
        self.bottleneck_up = nn.ModuleDict({})
        self.bottleneck_non_linearity: dict[str, str] = {}
        self._disable_adapters = False
        self.merged_adapters = []
        self.features = output_features(self.get_base_layer())

    def update_layer(self, adapter_name: str, config: BottleneckConfig, **kwargs) -> None:
        bottleneck = max(1, self.features // config.reduction_factor)
        self.bottleneck_down[adapter_name] = nn.Linear(self.features, bottleneck)
        self.bottleneck_up[adapter_name] = nn.Linear(bottleneck, self.features)
        self.bottleneck_non_linearity[adapter_name] = config.non_linearity
        if config.init_weights:
            self.reset_bottleneck_parameters(adapter_name)
        self._move_adapter_to_device_of_base_layer(adapter_name)
        self.set_adapter(self.active_adapters, inference_mode=config.inference_mode)

    def reset_bottleneck_parameters(self, adapter_name: str) -> None:
        """Zero up-projection (weights and bias): the adapter is the identity until it trains."""
        up = self.bottleneck_up[adapter_name]
        nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)


class Linear(nn.Module, BottleneckLayer):
    """``y = base(x)``; then ``y = y + up(f(down(y)))`` for each active adapter."""

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: BottleneckConfig, **kwargs) -> None:
        super().__init__()
        BottleneckLayer.__init__(self, base_layer)
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, config)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.disable_adapters:
            return result
        for name in self.active_adapters:
            if name not in self.bottleneck_down:
                continue
            down, up = self.bottleneck_down[name], self.bottleneck_up[name]
            activation = ACTIVATIONS[self.bottleneck_non_linearity[name]]
            hidden = self._cast_input_dtype(result, down.weight.dtype)
            result = result + up(activation(down(hidden))).to(result.dtype)
        return result

    def __repr__(self) -> str:
        return "bottleneck." + super().__repr__()
