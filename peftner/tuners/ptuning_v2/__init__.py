"""P-tuning v2 as a registered PEFT method (``PeftType.PEFTNER_PTUNING_V2``).

Importing this package imports PEFT and registers the method, so that ``get_peft_model`` accepts a
:class:`PtuningV2Config` and ``PeftModel.from_pretrained`` loads saved prefixes.
"""

from peftner.tuners.registry import register

from .config import PtuningV2Config
from .layer import PrefixSelfAttention, PtuningV2Layer, extend_attention_mask
from .model import PtuningV2Model

register("peftner_ptuning_v2", config_cls=PtuningV2Config, model_cls=PtuningV2Model, prefix=PtuningV2Model.prefix)

__all__ = ["PrefixSelfAttention", "PtuningV2Config", "PtuningV2Layer", "PtuningV2Model", "extend_attention_mask"]
