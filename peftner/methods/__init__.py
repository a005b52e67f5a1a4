"""Methods: each turns a token-classification model into the model to train.

``METHODS`` is the registry the recipes, the CLI and the benchmarks read; add a method by writing
a module with a :class:`~peftner.methods.base.Method` and listing it here.
"""

from peftner.methods.adapter import ADAPTER
from peftner.methods.base import Method, MethodConfig, count_parameters
from peftner.methods.bitfit import BITFIT
from peftner.methods.ptuning_v2 import PTUNING_V2
from peftner.methods.full import FULL
from peftner.methods.head import HEAD
from peftner.methods.ia3 import IA3
from peftner.methods.int8_lora import INT8_LORA
from peftner.methods.lora import LORA
from peftner.methods.peft import PEFT
from peftner.methods.peft_types import PEFT_TYPE_METHODS
from peftner.methods.prompt import PROMPT
from peftner.methods.qlora import QLORA

# Reference points (full, head, bitfit), PEFT methods, quantized backbones, and any PEFT config file.
# Bottleneck adapters and P-tuning v2 are peftner's own PEFT methods (see peftner/tuners/); every other
# PEFT type is one row of peftner/methods/peft_types.py (vera, loha, oft, ...).
# The hand-written ones have a file, a recipe (recipes/<name>_ner.py) and a YAML of defaults each.
FILE_METHODS: tuple[Method, ...] = (FULL, HEAD, BITFIT, LORA, ADAPTER, PROMPT, PTUNING_V2, IA3, INT8_LORA, QLORA, PEFT)
METHODS: dict[str, Method] = {m.name: m for m in (*FILE_METHODS, *PEFT_TYPE_METHODS)}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        from peftner.errors import PeftnerError

        import difflib

        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PeftnerError(f"unknown method {name!r}{hint}; choose from {', '.join(METHODS)}") from None


__all__ = ["FILE_METHODS", "METHODS", "Method", "MethodConfig", "count_parameters", "get_method"]
