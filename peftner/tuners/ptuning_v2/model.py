"""``PtuningV2Model``: adds trained key/value prefixes to every self-attention layer."""

from __future__ import annotations

from peftner.tuners.base import WrappingTuner

from .config import PtuningV2Config
from .layer import PrefixSelfAttention, PtuningV2Layer, supports_prefix


class PtuningV2Model(WrappingTuner):
    """P-tuning v2 (Liu et al. 2021, https://arxiv.org/abs/2110.07602): deep prompt tuning, i.e.
    trainable prefixes of keys/values at every layer, for BERT-family encoders."""

    prefix: str = "ptuning_v2_"
    tuner_layer_cls = PtuningV2Layer
    wrapper_cls = PrefixSelfAttention
    needs = "P-tuning v2 needs a BERT-style self-attention (query/key/value projections)"
    target_module_mapping: dict = {}
    supports = staticmethod(supports_prefix)

    def _prepare_adapter_config(self, peft_config: PtuningV2Config, model_config: dict) -> PtuningV2Config:
        if peft_config.target_modules is None:
            peft_config.target_modules = {"attention.self"}
        return peft_config

    def _check_merge_allowed(self):
        raise ValueError("P-tuning v2 prefixes cannot be merged into the base weights")
