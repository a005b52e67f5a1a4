"""``PtuningV2Model``: adds trained key/value prefixes to every self-attention layer."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer

from peftner.tuners.registry import register

from .config import PtuningV2Config
from .interface import InterfacePrefixAttention, supports_interface
from .layer import PrefixSelfAttention, PtuningV2Layer, supports_prefix


class PtuningV2Model(BaseTuner):
    """P-tuning v2 (Liu et al. 2021, https://arxiv.org/abs/2110.07602): deep prompt tuning, i.e.
    trainable prefixes of keys/values at every layer (BERT family, and any model using transformers'
    attention interface: :mod:`.interface`)."""

    prefix: str = "ptuning_v2_"
    tuner_layer_cls = PtuningV2Layer
    target_module_mapping: dict = {}

    def _prepare_adapter_config(self, peft_config: PtuningV2Config, model_config: dict) -> PtuningV2Config:
        if peft_config.target_modules is None:
            peft_config.target_modules = {"attention.self"}
        return peft_config

    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, PtuningV2Layer):
            target.update_layer(adapter_name, peft_config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if supports_prefix(base):  # BERT family: peftner's own attention computation
            new_module = PrefixSelfAttention(target, adapter_name, peft_config)
        elif supports_interface(base):  # any attention calling transformers' attention interface
            new_module = InterfacePrefixAttention(target, adapter_name, peft_config, self.model.config)
        else:
            raise ValueError(f"{current_key}: P-tuning v2 needs a self-attention whose keys/values it can reach "
                             f"(BERT-style or transformers' attention interface), got {type(base).__name__}")
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _check_merge_allowed(self):
        raise ValueError("P-tuning v2 prefixes cannot be merged into the base weights")


register("peftner_ptuning_v2", config_cls=PtuningV2Config, model_cls=PtuningV2Model, prefix=PtuningV2Model.prefix)
