"""Markdown tables for generated docs, model cards and reports: one place that writes the syntax, so
every table in README, docs/ and a model card is built the same way."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(columns: dict[str, str], rows: Iterable[Sequence]) -> list[str]:
    """A markdown table's lines. ``columns``: each heading and its alignment (``"l"`` or ``"r"``);
    ``rows``: each row's cells, already formatted."""
    return ["| " + " | ".join(columns) + " |", "|" + "".join("---:|" if a == "r" else "---|" for a in columns.values()),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def mean_and_spread(mean: float, std: float, seeds: int) -> str:
    """Mean ± sample std over seeds; one seed has no spread to show (not ± 0)."""
    return f"{mean:.4f} (1 seed)" if seeds < 2 else f"{mean:.4f} ± {std:.4f}"
