"""PEFT plumbing: peftner's own PEFT tuners, their registration with PEFT, and one checked ``get_peft_model``.

* :mod:`peftner.tuners.adapter` — bottleneck adapters (``PeftType.PEFTNER_BOTTLENECK``);
* :mod:`peftner.tuners.ptuning_v2` — P-tuning v2 prefixes (``PeftType.PEFTNER_PTUNING_V2``);
* :mod:`peftner.tuners.prompt` — PEFT prompt tuning with the virtual rows taken out of the output;
* :mod:`peftner.tuners.registry` — adds the two ``PEFTNER_*`` types to PEFT when it is imported.

Importing this package does not import PEFT (the CLI's ``--help`` stays fast).
"""

from __future__ import annotations

import re
from typing import Callable

from peftner.errors import OptionError, PeftnerError


# PEFT prompt-learning methods that prepend virtual tokens to the input (prefix tuning does not).
VIRTUAL_TOKEN_PEFT_TYPES = ("PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")


def virtual_positions(model) -> int:
    """Input positions a method prepends (soft prompts); windows must leave room for them."""
    config = getattr(model, "active_peft_config", None)
    if config is None or getattr(config, "peft_type", None) not in VIRTUAL_TOKEN_PEFT_TYPES:
        return 0
    return config.num_virtual_tokens * (getattr(config, "num_transformer_submodules", None) or 1)


def layer_names(model) -> list[str]:
    """Names of the model's parameterised leaf modules, per layer (``attention.self.query``, ...), in order.

    What a ``target_modules`` entry can match; listed in the error when nothing matched.
    """
    names = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None and next(module.parameters(recurse=False), None) is not None:
            names[re.split(r"\.\d+\.", name)[-1]] = None
    return list(names)


def get_peft_model(model, make_config: Callable[[], object], context: str, build=None):
    """The PEFT model of ``make_config()`` on ``model``; PEFT's ``ValueError`` becomes one line.

    Every PEFT method goes through here, so a bad target or option reads the same for all of them:
    ``CONTEXT: PEFT's first line (XConfig on this <model type> model; its layers: ...)``.
    ``build(model, config)`` replaces ``peft.get_peft_model`` (prompt tuning builds its own subclass).
    """
    from peft import get_peft_model as peft_get_peft_model

    config = None
    try:
        config = make_config()
        return (build or peft_get_peft_model)(model, config)
    except OptionError:
        raise
    except ValueError as err:
        model_type = getattr(getattr(model, "config", None), "model_type", "?")
        what = f"{type(config).__name__} on " if config is not None else ""
        raise PeftnerError(f"{context}: {str(err).splitlines()[0]} ({what}this {model_type} model; "
                           f"its layers: {', '.join(layer_names(model))})") from None


def single_task(model):
    """Give a POLY model (PEFT's multi-task routing) task id 0 on every forward that passes none.

    A NER run has one task, and neither the training loop nor :class:`peftner.reuse.Tagger` passes
    ``task_ids``; PEFT's Poly layers refuse a forward without them. Applied after training's
    ``get_peft_model`` and after every reload of a POLY adapter. Returns the model.
    """
    tuner = getattr(model, "base_model", None)
    if type(tuner).__name__ != "PolyModel" or getattr(tuner, "_peftner_single_task", False):
        return model

    def with_task_ids(_, args, kwargs):
        if kwargs.get("task_ids") is None:
            import torch

            reference = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
            if reference is None and args:
                reference = args[0]
            kwargs["task_ids"] = torch.zeros(reference.shape[0], dtype=torch.long, device=reference.device)
        return args, kwargs

    tuner.register_forward_pre_hook(with_task_ids, with_kwargs=True)
    tuner._peftner_single_task = True
    return model
