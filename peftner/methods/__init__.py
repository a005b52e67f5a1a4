"""Methods: each turns a token-classification model into the model to train.

``METHODS`` is the registry the recipes, the CLI and the benchmarks read; add a method by writing
a module with a :class:`~peftner.methods.base.Method` and listing it here.
"""

from peftner.methods.base import Method, MethodConfig, count_parameters
from peftner.methods.full import FULL
from peftner.methods.lora import LORA

METHODS: dict[str, Method] = {m.name: m for m in (FULL, LORA)}

# head, bitfit, ia3, quantized LoRA (int8_lora, qlora) and any PEFT config file (peft)
from peftner.methods.bitfit import BITFIT  # noqa: E402
from peftner.methods.head import HEAD  # noqa: E402
from peftner.methods.ia3 import IA3  # noqa: E402
from peftner.methods.int8_lora import INT8_LORA  # noqa: E402
from peftner.methods.peft_config import PEFT  # noqa: E402
from peftner.methods.qlora import QLORA  # noqa: E402

METHODS.update({m.name: m for m in (HEAD, BITFIT, IA3, INT8_LORA, QLORA, PEFT)})


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        from peftner.errors import PeftnerError

        raise PeftnerError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "MethodConfig", "count_parameters", "get_method"]
