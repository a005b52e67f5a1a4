"""What peftner's own tuners share: a PEFT ``BaseTuner`` that wraps each target module in a layer."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer


class WrappingTuner(BaseTuner):
    """Wraps every target module in a module that is also the tuner's ``tuner_layer_cls``.

    Subclasses implement :meth:`wrap` (which layer for which base module, or a ``ValueError``); a target
    wrapped already gets the new adapter added to its layer.
    """

    def wrap(self, target, adapter_name: str, peft_config, base, current_key: str):
        raise NotImplementedError

    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, self.tuner_layer_cls):
            target.update_layer(adapter_name, peft_config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        new_module = self.wrap(target, adapter_name, peft_config, base, current_key)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)  # an added, inactive adapter does not train
        self._replace_module(parent, target_name, new_module, target)
