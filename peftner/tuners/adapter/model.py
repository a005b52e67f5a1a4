"""``BottleneckModel``: injects bottleneck adapters into the output projections of a transformer."""

from __future__ import annotations

from torch import nn

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer

from peftner.tuners.registry import register

from .config import BottleneckConfig
from .layer import BottleneckLayer, Linear

# (attention output projection, feed-forward output projection) per model type, as regexes on
# module names; BERT's names are shared by RoBERTa, XLM-R, ELECTRA, CamemBERT, DeBERTa, ...
_BERT_LIKE = (r".*\.layer\.\d+\.attention\.output\.dense", r".*\.layer\.\d+\.output\.dense")
OUTPUT_PROJECTIONS = {
    "distilbert": (r".*\.layer\.\d+\.attention\.out_lin", r".*\.layer\.\d+\.ffn\.lin2"),
}


def default_target_modules(model_type: str | None, variant: str) -> str:
    """Regex of the projections an adapter follows: Houlsby both sub-layers, Pfeiffer feed-forward only."""
    attention, feed_forward = OUTPUT_PROJECTIONS.get(model_type, _BERT_LIKE)
    return feed_forward if variant == "pfeiffer" else f"(?:{attention})|(?:{feed_forward})"


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
        if not isinstance(base, nn.Linear):
            raise ValueError(f"{current_key}: bottleneck adapters need an nn.Linear output projection, "
                             f"got {type(base).__name__}")
        new_module = Linear(target, adapter_name, peft_config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)  # an added, inactive adapter does not train
        self._replace_module(parent, target_name, new_module, target)

    def _check_merge_allowed(self):
        raise ValueError("bottleneck adapters are non-linear and cannot be merged into the base weights")


register("peftner_bottleneck", config_cls=BottleneckConfig, model_cls=BottleneckModel, prefix=BottleneckModel.prefix)
