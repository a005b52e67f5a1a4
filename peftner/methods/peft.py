"""Any other PEFT method (LoHa, LoKr, AdaLoRA, VeRA, ...) from a PEFT config JSON file.

The file is what ``PeftConfig.save_pretrained`` writes (``adapter_config.json``) or the same keys by
hand, e.g. ``{"peft_type": "LOHA", "r": 8, "target_modules": ["query", "value"]}``. It is parsed as
plain JSON (no code runs); ``task_type`` is forced to TOKEN_CLS and the head is always added to
``modules_to_save``, so the result obeys the same contract as the built-in methods.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import ClassVar

from peftner.errors import PeftnerError
from peftner.methods.base import Method, MethodConfig, head_module_names
from peftner.methods.peft_types import METHODS_BY_TYPE, ROWS, refusal

logger = logging.getLogger("peftner")


@dataclass
class PeftFileConfig(MethodConfig):
    peft_config: str | None = dataclasses.field(
        default=None, metadata={"help": "PEFT config JSON (e.g. an adapter_config.json) to apply; required"})
    # One rate for whatever method the file holds: pass --learning-rate to suit it.
    train_defaults: ClassVar[dict] = {"learning_rate": 5e-4}


def load_peft_config(path: str, head_names: list[str]):
    """A validated PEFT config from ``path``: unknown types or keys are errors, not warnings."""
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING, PeftConfig, TaskType

    try:
        raw = PeftConfig.from_json_file(path)
    except FileNotFoundError:
        raise PeftnerError(f"{path}: PEFT config file not found") from None
    except json.JSONDecodeError as err:
        raise PeftnerError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(raw, dict) or "peft_type" not in raw:
        raise PeftnerError(f"{path}: expected a JSON object with a \"peft_type\" key (e.g. \"LOHA\")")
    peft_type = str(raw["peft_type"]).upper()
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    if config_cls is None:
        known_types = sorted(getattr(t, "value", str(t)) for t in PEFT_TYPE_TO_CONFIG_MAPPING)
        raise PeftnerError(f"{path}: unknown peft_type {raw['peft_type']!r}; PEFT knows {', '.join(known_types)}")
    reason = refusal(peft_type)
    if reason:  # before PEFT sees the head in modules_to_save, which some of these configs lack
        raise PeftnerError(f"{path}: {reason}")
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PeftnerError(f"{path}: unknown key(s) {', '.join(unknown)} for {config_cls.__name__}")
    kwargs = {k: v for k, v in raw.items() if k != "peft_type"}
    kwargs["task_type"] = TaskType.TOKEN_CLS
    kwargs["modules_to_save"] = sorted(set(kwargs.get("modules_to_save") or []) | set(head_names))
    if peft_type == "ADALORA":
        # The training loop sets total_step to the run's real number of optimizer steps (see
        # peftner.training.rank_allocation); until then a value that passes AdaLoRA's own checks.
        if kwargs.get("total_step") is not None:
            logger.warning("%s: AdaLoRA total_step %s is ignored: peftner sets it to the run's number of "
                           "optimizer steps", path, kwargs["total_step"])
        kwargs["total_step"] = int(kwargs.get("tinit") or 0) + int(kwargs.get("tfinal") or 0) + 1
    try:
        config = config_cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise PeftnerError(f"{path}: invalid {config_cls.__name__}: {str(err).splitlines()[0]}") from None
    if config.is_prompt_learning:
        raise PeftnerError(f"{path}: prompt-learning configs ({peft_type}) add virtual tokens; "
                           "use the prompt or ptuning_v2 method instead")
    return config


def apply_peft_file(model, config: PeftFileConfig):
    from peftner.tuners import get_peft_model

    if not config.peft_config:
        raise PeftnerError("the peft method needs --peft-config FILE.json "
                           "(a PEFT config, e.g. {\"peft_type\": \"LOHA\"})")
    peft_config = load_peft_config(config.peft_config, head_module_names(model))
    row = next((r for r in ROWS if r.peft_type == peft_config.peft_type), None)
    if row is not None and row.single_task and peft_config.n_tasks != 1:
        raise PeftnerError(f"{config.peft_config}: POLY with n_tasks {peft_config.n_tasks}: a NER run is one task "
                           "(every example gets task id 0); set n_tasks to 1")
    if row is not None and row.targets != "linear" and not peft_config.target_modules:
        # LN tuning's norms and ShadowPEFT's blocks, found as the peft_types method finds them
        from peftner.methods.peft_types import resolved_targets

        method = METHODS_BY_TYPE[row.peft_type]
        peft_config.target_modules = resolved_targets(row, model, method.default_config())
    model = get_peft_model(model, lambda: peft_config, config.peft_config)
    if row is not None and row.single_task:
        from peftner.tuners import single_task

        single_task(model)  # POLY: task id 0 (a NER run is one task), as the poly method does
    return model


PEFT = Method(
    name="peft",
    summary="any PEFT method (LoHa, LoKr, AdaLoRA, ...) from --peft-config FILE.json, head trained",
    config_cls=PeftFileConfig,
    apply=apply_peft_file,
    compared=False,
)
