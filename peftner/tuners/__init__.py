"""PEFT plumbing: peftner's own PEFT tuners, their registration with PEFT, and one checked ``get_peft_model``.

* :mod:`peftner.tuners.adapter` — bottleneck adapters (``PeftType.PEFTNER_BOTTLENECK``);
* :mod:`peftner.tuners.ptuning_v2` — P-tuning v2 prefixes (``PeftType.PEFTNER_PTUNING_V2``);
* :mod:`peftner.tuners.prompt` — PEFT prompt tuning with the virtual rows taken out of the output;
* :mod:`peftner.tuners.registry` — adds the two ``PEFTNER_*`` types to PEFT when it is imported.

Importing this package does not import PEFT (the CLI's ``--help`` stays fast).
"""

from __future__ import annotations

from peftner.errors import PeftnerError


def get_peft_model(model, peft_config):
    """``peft.get_peft_model`` with PEFT's target-matching errors turned into one-line user errors."""
    from peft import get_peft_model as peft_get_peft_model

    try:
        return peft_get_peft_model(model, peft_config)
    except ValueError as err:
        model_type = getattr(getattr(model, "config", None), "model_type", "?")
        raise PeftnerError(f"{type(peft_config).__name__} cannot be applied to this {model_type} model: "
                           f"{str(err).splitlines()[0]}") from None
