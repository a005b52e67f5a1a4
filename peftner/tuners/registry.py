"""Making peftner's own PEFT methods (bottleneck adapters, P-tuning v2) first-class PEFT methods.

PEFT only loads an adapter whose ``peft_type`` is a member of ``peft.utils.PeftType`` and has been
registered with ``peft.utils.register_peft_method``. Both steps are done here, idempotently, so that
``model.save_pretrained(dir)`` writes a normal adapter and ``PeftModel.from_pretrained(base, dir)``
loads it again in any process that has run ``import peftner``.

``import peftner`` must stay fast (the CLI's ``--help`` should not pay for importing PEFT), so it
only calls :func:`register_when_peft_is_imported`: if PEFT is already imported the methods are
registered at once, otherwise a one-shot import hook registers them right after ``import peft``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
import threading

# PeftType member -> module whose import registers it (the tuner's model.py calls :func:`register`;
# the tuner packages' ``__init__`` stays light so the CLI can read their options without PEFT). Names carry a ``PEFTNER_`` namespace so a future
# PEFT method of the same name cannot collide with ours.
CUSTOM_METHOD_MODULES = {
    "PEFTNER_BOTTLENECK": "peftner.tuners.adapter.model",
    "PEFTNER_PTUNING_V2": "peftner.tuners.ptuning_v2.model",
}

_lock = threading.RLock()


def peft_type(name: str):
    """The ``PeftType`` member ``name``, added to the enum first if this PEFT does not have it."""
    from peft.utils.peft_types import PeftType

    with _lock:
        if name in PeftType.__members__:
            return PeftType[name]
        add_member = getattr(type(PeftType), "_add_member_", None)  # Python >= 3.13
        member = str.__new__(PeftType, name)
        member._name_ = member._value_ = name
        member.__objclass__ = PeftType
        member._sort_order_ = len(PeftType._member_names_)
        PeftType._member_names_.append(name)
        if add_member is not None:
            add_member(PeftType, name, member)
        else:  # Python 3.11/3.12: what EnumType does for each member at class creation
            PeftType._member_map_[name] = member
            type.__setattr__(PeftType, name, member)
        PeftType._value2member_map_[name] = member
        return member


def register(name: str, config_cls, model_cls, prefix: str) -> None:
    """``register_peft_method`` that may be called again (re-import, ``importlib.reload``)."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils import register_peft_method

    with _lock:
        member = peft_type(name.upper())
        registered = PEFT_TYPE_TO_CONFIG_MAPPING.get(member)
        if registered is not None:
            if registered.__qualname__ != config_cls.__qualname__:
                raise RuntimeError(f"PEFT method {name} is already registered to {registered.__qualname__}")
            _forget(member)  # a reloaded module: point PEFT at the new classes
        register_peft_method(name=name, config_cls=config_cls, model_cls=model_cls, prefix=prefix)


def lazy_attributes(package: str, where: dict[str, str]):
    """A module ``__getattr__``: ``name`` is imported from ``package.<where[name]>`` on first access.

    Lets a tuner package export its PEFT classes without importing PEFT when only its options are needed.
    """

    def __getattr__(name):
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def targets_as_sets(config) -> None:
    """PEFT's convention for module-name lists in a config: sets (order-free matching)."""
    for name in ("target_modules", "exclude_modules"):
        value = getattr(config, name)
        if isinstance(value, list):
            setattr(config, name, set(value))


def _forget(member) -> None:
    from peft import mapping

    for table in ("PEFT_TYPE_TO_CONFIG_MAPPING", "PEFT_TYPE_TO_TUNER_MAPPING",
                  "PEFT_TYPE_TO_MIXED_MODEL_MAPPING", "PEFT_TYPE_TO_PREFIX_MAPPING"):
        getattr(mapping, table, {}).pop(member, None)


def register_custom_methods() -> None:
    """Import (and so register) every peftner PEFT method; imports PEFT."""
    for module in CUSTOM_METHOD_MODULES.values():
        importlib.import_module(module)


def _peft_is_loaded() -> bool:
    module = sys.modules.get("peft")
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


class _RegisterAfterPeftLoads(importlib.abc.MetaPathFinder):
    """Finds ``peft`` with the other finders and runs the registration once its module has executed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "peft":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _remove_hook()
        register_custom_methods()

    def __getattr__(self, name):  # resource readers, get_filename, ...
        return getattr(self._loader, name)


def _remove_hook() -> None:
    with _lock:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterPeftLoads)]


def register_when_peft_is_imported() -> None:
    """Register peftner's PEFT methods now if PEFT is loaded, else right after it is imported."""
    with _lock:
        if _peft_is_loaded():
            register_custom_methods()
        elif "peft" not in sys.modules and not any(isinstance(f, _RegisterAfterPeftLoads) for f in sys.meta_path):
            sys.meta_path.insert(0, _RegisterAfterPeftLoads())
