"""``BottleneckModel``: injects bottleneck adapters into the output projections of a transformer."""

from __future__ import annotations

from peftner.models.layouts import LAYOUTS, adapter_targets
from peftner.tuners.base import WrappingTuner

from .config import BottleneckConfig
from .layer import BottleneckLayer, Linear, output_features

def default_target_modules(model_type: str | None, variant: str) -> str:
    """Regex of the projections an adapter follows: Houlsby both sub-layers, Pfeiffer feed-forward only.

    The same defaults and refusal as the ``adapter`` method (:mod:`peftner.models.layouts`); used when a
    ``BottleneckConfig`` is built without ``target_modules`` (PEFT's own ``get_peft_model``).
    """
    return adapter_targets(LAYOUTS.get(model_type), model_type, variant)


class BottleneckModel(WrappingTuner):
    """Bottleneck adapters (Houlsby et al. 2019, https://arxiv.org/abs/1902.00751; Pfeiffer et al. 2021,
    https://arxiv.org/abs/2005.00247) as a PEFT tuner: frozen backbone, small trainable adapters."""

    prefix: str = "bottleneck_"
    tuner_layer_cls = BottleneckLayer
    target_module_mapping: dict = {}

    def _prepare_adapter_config(self, peft_config: BottleneckConfig, model_config: dict) -> BottleneckConfig:
        if peft_config.target_modules is None:
            peft_config.target_modules = default_target_modules(model_config.get("model_type"), peft_config.variant)
        return peft_config

    def wrap(self, target, adapter_name, peft_config, base, current_key):
        try:
            output_features(base)
        except TypeError as err:
            raise ValueError(f"{current_key}: {err}") from None
        return Linear(target, adapter_name, peft_config)

    def _check_merge_allowed(self):
        raise ValueError("bottleneck adapters are non-linear and cannot be merged into the base weights")
