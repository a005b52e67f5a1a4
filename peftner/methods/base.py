"""The method contract shared by every fine-tuning method.

A method is a name, a config dataclass (its knobs with their defaults from the literature, and in
``train_defaults`` the shared training settings it runs with by default, e.g. its learning rate) and
``apply``: a function that turns a freshly loaded token-classification model into the model to train.
The CLI, ``--help``, the YAML files in ``recipes/configs/`` and docs/methods.md all read the
defaults from the config class, so a default is written exactly once. Everything else — data,
the training loop, metrics, saving — is the same for every method, so a comparison differs only in
the method.

Contract for ``apply(model, config) -> model``:
  * the classifier head stays trainable (and, for PEFT methods, is saved with the adapter);
  * ``model(input_ids=..., attention_mask=..., labels=...)`` returns ``.loss`` and ``.logits`` with
    one row per input position (methods that add virtual tokens remove them again);
  * ``model.save_pretrained(dir)`` writes safetensors that :func:`peftner.reuse` can load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from peftner.data import max_sequence_length
from peftner.models.facts import facts_of, head_names
from peftner.tuners import virtual_positions



@dataclass
class MethodConfig:
    """Base class of method configs: the method's knobs are its fields.

    ``train_defaults`` overrides defaults of the shared :class:`peftner.config.TrainConfig` for this
    method (a class attribute, not a knob of its own: ``--learning-rate`` stays one flag).
    """

    train_defaults: ClassVar[dict] = {}
    # What ``peftner tune`` searches: a config field (or a bundle's name) -> a peftner.methods.space entry.
    search_space: ClassVar[dict] = {}

    def __post_init__(self):
        from peftner.validation import check_fields

        check_fields(self)  # the limits each field declares in its metadata


@dataclass
class Method:
    name: str
    summary: str
    config_cls: type
    apply: Callable[[Any, Any], Any]
    # Extra keyword arguments for ``from_pretrained`` (e.g. a quantization config), from the config.
    load_kwargs: Callable[[Any], dict] | None = None
    is_peft: bool = True
    # In the default comparison (``peftner compare``); reference probes and the config-file route are not.
    compared: bool = True
    # Non-PEFT methods that train a few tensors of the model (head, BitFit) save only those
    # (peftner.reuse.partial) instead of the whole model.
    saves_trained_only: bool = False
    # ``for_model(config, facts) -> config``: fill the architecture defaults (None knobs) and refuse,
    # in one line, what cannot apply. Called through :meth:`resolve`, once per config.
    for_model: Callable[[Any, Any], Any] | None = None

    @property
    def train_defaults(self) -> dict:
        """This method's overrides of the shared training defaults (from its config class)."""
        return dict(self.config_cls.train_defaults)

    @property
    def search_space(self) -> dict:
        """What ``peftner tune`` searches for this method (from its config class)."""
        return dict(self.config_cls.search_space)

    def default_config(self):
        return self.config_cls()

    def resolve(self, config, facts):
        """``config`` with the architecture's defaults filled in and checked against ``facts``, once.

        The recipe resolves before any data is read (from the config alone); ``apply`` resolves what
        nobody resolved yet (a config built in code). A resolved config is marked (an attribute, not a
        field: never saved or compared), so resolving it again returns it as it is.
        """
        if self.for_model is None or getattr(config, _RESOLVED, False):
            return config
        config = self.for_model(config, facts)
        object.__setattr__(config, _RESOLVED, True)
        return config


_RESOLVED = "_peftner_resolved"


def head_module_names(model) -> list[str]:
    """Names of the token-classification head modules, whatever they are called (see
    :func:`peftner.models.facts.head_names`)."""
    return head_names(model)


def resolved(method: Method, model, config):
    """``config`` with the architecture defaults of ``model`` filled in (:meth:`Method.resolve`)."""
    if method.for_model is None or getattr(config, _RESOLVED, False):
        return config
    return method.resolve(config, facts_of(model))


def own_tuner(package: str, config_name: str, name: str, targets=None) -> Callable[[Any, Any], Any]:
    """``apply`` for a method whose config is the options of one of peftner's own PEFT tuners.

    The tuner's PEFT config (``peftner.tuners.<package>.<config_name>``) is built from the method
    config's fields, so the knobs are defined once (:mod:`peftner.tuners.options`);
    ``targets(model, options)`` gives its ``target_modules`` for this architecture.
    """

    def apply(model, options):
        import dataclasses
        import importlib

        from peft import TaskType

        from peftner.tuners import get_peft_model

        config_cls = getattr(importlib.import_module(f"peftner.tuners.{package}"), config_name)
        where = {"target_modules": targets(model, options)} if targets else {}
        return get_peft_model(model, lambda: config_cls(
            task_type=TaskType.TOKEN_CLS, modules_to_save=head_module_names(model), **dataclasses.asdict(options),
            **where), name)

    return apply


def head_prefixes(model) -> tuple[str, ...]:
    """Parameter-name prefixes of the head (``("classifier.",)``), for name predicates."""
    return tuple(f"{h}." for h in head_module_names(model))


def freeze_all_but(model, trainable: Callable[[str], bool]):
    """Set ``requires_grad`` from a predicate on parameter names; returns the model."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(trainable(name)))
    return model


def trainable_state(model) -> dict:
    """CPU copies of the parameters with ``requires_grad``: what the method trains (checkpoints, the best
    dev state, and the saved tensors of head / BitFit)."""
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if p.requires_grad}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit packed weights count as their unpacked size."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(int(x) for x in model.get_nb_trainable_parameters())
    trainable = total = 0
    for parameter in model.parameters():
        n = parameter.numel()
        if parameter.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        trainable += n if parameter.requires_grad else 0
    return trainable, total


def window_length(tokenizer, model, requested: int | None = None) -> int:
    """Subwords per input window for ``model`` (after its method is applied).

    The model's limit (or ``requested``), less the positions a soft prompt prepends. Training and
    :class:`peftner.reuse.Tagger` both call this, so a reloaded adapter sees the same windows.
    """
    return min(max_sequence_length(tokenizer, model.config, requested),
               max_sequence_length(tokenizer, model.config) - virtual_positions(model))
