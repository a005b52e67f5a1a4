"""Search-space entries for ``peftner tune``: each method's file declares its space next to its defaults.

Plain data (no Optuna import), so listing methods stays light; :mod:`peftner.experiments.search` turns an entry
into an Optuna suggestion and the suggestion into recipe flags.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogUniform:
    """A float drawn on a log scale (learning rates)."""

    low: float
    high: float

    def suggest(self, trial, name: str):
        return trial.suggest_float(name, self.low, self.high, log=True)

    def describe(self) -> str:
        return f"{self.low:g} … {self.high:g} (log scale)"


@dataclass(frozen=True)
class Choice:
    """One of a few flag values."""

    options: tuple

    def suggest(self, trial, name: str):
        return trial.suggest_categorical(name, list(self.options))

    def describe(self) -> str:
        return ", ".join(map(str, self.options))


@dataclass(frozen=True)
class Bundle(Choice):
    """A :class:`Choice` whose options name sets of flags that must change together
    (``{"key,value": {"target_modules": "key,value", "feedforward_modules": ""}}``)."""

    flags: tuple = ()  # ((name, {field: value}), ...)

    @classmethod
    def of(cls, mapping: dict) -> "Bundle":
        return cls(tuple(mapping), tuple(mapping.items()))

    def expand(self, value) -> dict:
        return dict(dict(self.flags)[value])

    def describe(self) -> str:
        def one(name, flags):
            if list(flags.values()) in ([name], [None]):
                return name
            return f"{name} ({', '.join(f'{k}={_shown(v)}' for k, v in flags.items())})"
        return "; ".join(one(name, flags) for name, flags in self.flags)


def _shown(value) -> str:
    return "default" if value is None else value or "\u2205"  # unset; an empty list


def searched_fields(space: dict) -> list[str]:
    """Config fields a search space varies (learning rate first, bundles expanded): tables print these."""
    names = ["learning_rate"]
    for name, spec in space.items():
        names += list(spec.flags[0][1]) if isinstance(spec, Bundle) else [name]
    return list(dict.fromkeys(names))
