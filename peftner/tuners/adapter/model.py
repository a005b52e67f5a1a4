"""``BottleneckModel``: injects bottleneck adapters into the output projections of a transformer."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer

from peftner.tuners.registry import register

from .config import BottleneckConfig
from .layer import BottleneckLayer, Linear, output_features

def default_target_modules(model_type: str | None, variant: str) -> str:
    """Regex of the projections an adapter follows: Houlsby both sub-layers, Pfeiffer feed-forward only.

    The names per architecture are :mod:`peftner.architectures`'s layouts (BERT's for unknown types,
    as before: RoBERTa, XLM-R, ELECTRA, DeBERTa share them).
    """
    from peftner.architectures import BERT, LAYOUTS, adapter_regex

    layout = LAYOUTS.get(model_type, BERT)
    return adapter_regex(layout if layout.adapter_feedforward else BERT, variant)


class BottleneckModel(BaseTuner):
    """Bottleneck adapters (Houlsby et al. 2019, https://arxiv.org/abs/1902.00751; Pfeiffer et al. 2021,
    https://arxiv.org/abs/2005.00247) as a PEFT tuner: frozen backbone, small trainable adapters."""

    prefix: str = "bottleneck_"
    tuner_layer_cls = BottleneckLayer
    target_module_mapping: dict = {}

    def _prepare_adapter_config(self, peft_config: BottleneckConfig, model_config: dict) -> BottleneckConfig:
        if peft_config.target_modules is None:
            peft_config.target_modules = default_target_modules(model_config.get("model_type"), peft_config.variant)
        return peft_config

    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, BottleneckLayer):
            target.update_layer(adapter_name, peft_config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        try:
            output_features(base)
        except TypeError as err:
            raise ValueError(f"{current_key}: {err}") from None
        new_module = Linear(target, adapter_name, peft_config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)  # an added, inactive adapter does not train
        self._replace_module(parent, target_name, new_module, target)

    def _check_merge_allowed(self):
        raise ValueError("bottleneck adapters are non-linear and cannot be merged into the base weights")


register("peftner_bottleneck", config_cls=BottleneckConfig, model_cls=BottleneckModel, prefix=BottleneckModel.prefix)
