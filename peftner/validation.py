"""Checks of run settings that must fail before any data or model loads, with the flag named."""

from __future__ import annotations

from peftner.errors import OptionError, PeftnerError


def resolve_device(name: str | None, what: str = "--device"):
    """``torch.device`` for ``name`` (default: cuda when available), refused when this machine lacks it."""
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise PeftnerError(f"{what} {name}: not a device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if torch.version.cuda is None and not getattr(torch.version, "hip", None):
            raise PeftnerError(f"{what} {name}: this torch build has no CUDA support (a CPU-only build); "
                               "use --device cpu or install a CUDA build of torch")
        if not torch.cuda.is_available():
            raise PeftnerError(f"{what} {name}: no CUDA GPU is visible on this machine; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PeftnerError(f"{what} {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise PeftnerError(f"{what} {name}: MPS is not available on this machine; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps", "xpu"):
        raise PeftnerError(f"{what} {name}: unsupported device type (use cpu, cuda or cuda:N)")
    return device


# --------------------------------------------------------------------------- run configuration
# Each dataclass field of a run configuration declares its own limits in its metadata, next to its
# help text, so the check cannot drift from the field:
#   "min" / "max": inclusive bounds; "above" / "below": exclusive bounds; "choices": allowed values.
# Types come from the annotation; floats must be finite; booleans accept true/false (and the strings
# yes/no/on/off/1/0 the command line accepts), never a truthy string.

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for the words the CLI and YAML accept, else None."""
    word = text.strip().lower()
    return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None


def _field_type(config_cls, name: str):
    import types
    import typing

    annotation = typing.get_type_hints(config_cls)[name]
    args = typing.get_args(annotation)
    optional = type(None) in args
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    return annotation, optional


def _describe(value) -> str:
    return repr(value) if not isinstance(value, float) else str(value)


def coerce(value, annotation, optional: bool, where: str):
    """``value`` (from YAML or a flag) as ``annotation``, or a :class:`PeftnerError` naming ``where``."""
    import math
    import typing

    if value is None:
        if optional:
            return None
        raise OptionError(f"{where} needs a value")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        parsed = parse_bool(value) if isinstance(value, str) else None
        if parsed is None:
            raise OptionError(f"{where} must be true or false, got {_describe(value)}")
        return parsed
    if annotation is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                pass
        if not isinstance(value, int) or isinstance(value, bool):
            raise OptionError(f"{where} must be an integer, got {_describe(value)}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string
            try:
                value = float(value.strip())
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise OptionError(f"{where} must be a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise OptionError(f"{where} must be a finite number, got {value}")
        return float(value)
    if annotation is str:
        if isinstance(value, bool):  # YAML 1.1 reads unquoted no/off/yes/on as booleans
            raise OptionError(f"{where} must be a string, got {value} (YAML reads an unquoted no, off, yes or on as "
                              "true/false: put the value in quotes)")
        if not isinstance(value, str):
            raise OptionError(f"{where} must be a string, got {_describe(value)}")
        return value
    if typing.get_origin(annotation) is list:
        item = typing.get_args(annotation)[0] if typing.get_args(annotation) else str
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise OptionError(f"{where} must be a list, got {_describe(value)}")
        return [coerce(v, item, False, f"{where} item") for v in value]
    return value


def check_limits(value, metadata, where: str):
    """The limits a field declares in its metadata (see the comment above)."""
    if value is None:
        return
    choices = metadata.get("choices")
    if choices is not None and value not in choices:
        listed = ", ".join(map(str, choices))
        raise OptionError(f"{where} must be one of {listed}, got {_describe(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if "min" in metadata and value < metadata["min"]:
        raise OptionError(f"{where} must be at least {metadata['min']}, got {_describe(value)}")
    if "above" in metadata and value <= metadata["above"]:
        raise OptionError(f"{where} must be greater than {metadata['above']}, got {_describe(value)}")
    if "max" in metadata and value > metadata["max"]:
        raise OptionError(f"{where} must be at most {metadata['max']}, got {_describe(value)}")
    if "below" in metadata and value >= metadata["below"]:
        raise OptionError(f"{where} must be below {metadata['below']}, got {_describe(value)}")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_fields(instance) -> None:
    """Every field of a config object within the limits its metadata declares (``__post_init__`` of
    the config classes calls this, so objects built in code are checked like the CLI's)."""
    import dataclasses

    for f in dataclasses.fields(instance):
        check_limits(getattr(instance, f.name), f.metadata, flag(f.name))


def validated(defaults, values: dict, origins: dict):
    """``defaults`` (a config object) with the fields named in ``values`` replaced, each value checked
    against its field's type and limits first.

    ``origins`` names where each value came from (``lora.yaml:3: epochs``; a flag otherwise) for the message.
    """
    import dataclasses

    config_cls = type(defaults)
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in values or not f.init:
            continue
        where = origins.get(f.name) or flag(f.name)
        annotation, optional = _field_type(config_cls, f.name)
        value = coerce(values[f.name], annotation, optional, where)
        check_limits(value, f.metadata, where)
        kwargs[f.name] = value
    return dataclasses.replace(defaults, **kwargs)


def check_at_least(args, minimums: dict) -> None:
    """Command-line counts (``{"n_trials": 1, ...}``) that were given must reach their minimum: a 0 read
    as "unset" would silently run with the default instead."""
    for name, minimum in minimums.items():
        check_limits(getattr(args, name, None), {"min": minimum}, flag(name))

