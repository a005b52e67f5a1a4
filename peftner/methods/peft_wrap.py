"""``get_peft_model`` with PEFT's target-matching errors turned into one-line user errors."""

from __future__ import annotations

from peftner.errors import PeftnerError


def wrap(model, peft_config):
    from peft import get_peft_model

    try:
        return get_peft_model(model, peft_config)
    except ValueError as err:
        model_type = getattr(getattr(model, "config", None), "model_type", "?")
        raise PeftnerError(f"{type(peft_config).__name__} cannot be applied to this {model_type} model: "
                           f"{str(err).splitlines()[0]}") from None
