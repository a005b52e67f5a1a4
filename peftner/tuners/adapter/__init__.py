"""Bottleneck adapters as a registered PEFT method (``PeftType.PEFTNER_BOTTLENECK``).

``options.py`` holds the knobs (no PEFT import: the CLI reads them); ``config.py``, ``layer.py``
and ``model.py`` are the PEFT tuner. Importing ``model.py`` imports PEFT and registers the method
(:mod:`peftner.tuners.registry` does it when PEFT is imported), so that ``get_peft_model`` accepts a
:class:`BottleneckConfig` and ``PeftModel.from_pretrained`` loads saved adapters.
"""

from peftner.tuners.registry import lazy_attributes

from .options import AdapterOptions

# The PEFT classes load on first use (they import PEFT and torch).
_LAZY = {
    "BottleneckConfig": "config", "BottleneckLayer": "layer", "Linear": "layer",
    "BottleneckModel": "model", "default_target_modules": "model",
}
__getattr__ = lazy_attributes(__name__, _LAZY)
__all__ = ["AdapterOptions", *_LAZY]
