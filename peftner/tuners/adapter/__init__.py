"""Bottleneck adapters as a registered PEFT method (``PeftType.PEFTNER_BOTTLENECK``).

Importing this package imports PEFT and registers the method, so that ``get_peft_model`` accepts a
:class:`BottleneckConfig` and ``PeftModel.from_pretrained`` loads saved adapters.
"""

from peftner.tuners.registry import register

from .config import BottleneckConfig
from .layer import BottleneckLayer, Linear
from .model import BottleneckModel, default_target_modules

register("peftner_bottleneck", config_cls=BottleneckConfig, model_cls=BottleneckModel, prefix=BottleneckModel.prefix)

__all__ = ["BottleneckConfig", "BottleneckLayer", "BottleneckModel", "Linear", "default_target_modules"]
