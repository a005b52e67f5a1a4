"""What peftner's own tuners share: a PEFT ``BaseTuner`` that wraps each target module in a layer class."""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer


class WrappingTuner(BaseTuner):
    """Wraps every target module in ``wrapper_cls`` (a module that is also the tuner's ``tuner_layer_cls``).

    Subclasses set ``wrapper_cls``, ``needs`` (what a target must be, for the error) and ``supports``.
    """

    wrapper_cls: type
    needs: str

    @staticmethod
    def supports(base) -> bool:
        raise NotImplementedError

    def _create_and_replace(self, peft_config, adapter_name, target, target_name, parent, current_key, **kwargs):
        if isinstance(target, self.tuner_layer_cls):
            target.update_layer(adapter_name, peft_config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not self.supports(base):
            raise ValueError(f"{current_key}: {self.needs}, got {type(base).__name__}")
        new_module = self.wrapper_cls(target, adapter_name, peft_config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)  # an added, inactive adapter does not train
        self._replace_module(parent, target_name, new_module, target)
