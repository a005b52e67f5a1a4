"""Methods: each turns a token-classification model into the model to train.

``METHODS`` is the registry the recipes, the CLI and the benchmarks read; add a method by writing
a module with a :class:`~peftner.methods.base.Method` and listing it here.
"""

from peftner.methods.base import Method, MethodConfig, count_parameters
from peftner.methods.full import FULL
from peftner.methods.lora import LORA

METHODS: dict[str, Method] = {m.name: m for m in (FULL, LORA)}

# Adapters and prompts (bottleneck adapters and P-tuning v2 are peftner's own PEFT methods).
from peftner.methods.adapter import ADAPTER  # noqa: E402
from peftner.methods.deep_prompt import PTUNING_V2  # noqa: E402
from peftner.methods.prompt import PROMPT  # noqa: E402

METHODS.update({m.name: m for m in (ADAPTER, PROMPT, PTUNING_V2)})


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        from peftner.errors import PeftnerError

        raise PeftnerError(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None


__all__ = ["METHODS", "Method", "MethodConfig", "count_parameters", "get_method"]
