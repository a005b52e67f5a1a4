"""``PtuningV2Model``: adds trained key/value prefixes to every self-attention layer."""

from __future__ import annotations

from peftner.tuners.base import WrappingTuner

from .config import PtuningV2Config
from .interface import InterfacePrefixAttention, supports_interface
from .layer import PrefixSelfAttention, PtuningV2Layer, supports_prefix


class PtuningV2Model(WrappingTuner):
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

    def wrap(self, target, adapter_name, peft_config, base, current_key):
        if supports_prefix(base):  # BERT family: peftner's own attention computation
            return PrefixSelfAttention(target, adapter_name, peft_config)
        if supports_interface(base):  # any attention calling transformers' attention interface
            return InterfacePrefixAttention(target, adapter_name, peft_config, self.model.config)
        raise ValueError(f"{current_key}: P-tuning v2 needs a self-attention whose keys/values it can reach "
                         f"(BERT-style or transformers' attention interface), got {type(base).__name__}")

    def _check_merge_allowed(self):
        raise ValueError("P-tuning v2 prefixes cannot be merged into the base weights")
