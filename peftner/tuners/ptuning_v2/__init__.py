"""P-tuning v2 as a registered PEFT method (``PeftType.PEFTNER_PTUNING_V2``).

``options.py`` holds the knobs (no PEFT import: the CLI reads them); ``config.py``, ``layer.py``
and ``model.py`` are the PEFT tuner. Importing ``model.py`` imports PEFT and registers the method
(:mod:`peftner.tuners.registry` does it when PEFT is imported), so that ``get_peft_model`` accepts a
:class:`PtuningV2Config` and ``PeftModel.from_pretrained`` loads saved prefixes.
"""

from peftner.tuners.registry import lazy_attributes

from .options import PtuningV2Options

# The PEFT classes load on first use (they import PEFT and torch).
_LAZY = {
    "PtuningV2Config": "config", "PrefixSelfAttention": "layer", "PtuningV2Layer": "layer",
    "extend_attention_mask": "layer", "PtuningV2Model": "model",
}
__getattr__ = lazy_attributes(__name__, _LAZY)
__all__ = ["PtuningV2Options", *_LAZY]
