"""What a comparison leaves on disk: runs.csv, summary.json, table.md and the plots."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from peftner.experiments.plots import plot_f1_vs_cost, plot_f1_vs_train_size
from peftner.experiments.results import CSV_COLUMNS, MethodSummary, RunRow
from peftner.experiments.tables import table_markdown, tuned_table_markdown
from peftner.report import format_versions


def write_outputs(out: Path, rows: list[RunRow], summary: list[MethodSummary], info: dict,
                  sweeps: dict[str, dict] | None = None) -> list[Path]:
    """runs.csv, summary.json, table.md and plots; ``sweeps`` (method: search summary) selects the
    tuned table."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(row) for row in rows)
    entries = [s.as_dict() for s in summary]
    (out / "summary.json").write_text(json.dumps({**info, "summary": entries, "sweeps": sweeps}, indent=2) + "\n")
    table = tuned_table_markdown(summary, sweeps) if sweeps is not None else table_markdown(summary)
    (out / "table.md").write_text(f"Command: `{info['command']}`\n\nMachine: {info['machine']}\n\n"
                                  f"Versions: {format_versions(info['versions'])}\n\n" + table)
    written = [out / "runs.csv", out / "summary.json", out / "table.md", plot_f1_vs_cost(summary, out / "f1_vs_params.png")]
    if len({s.train_size for s in summary}) > 1:
        full = max((r.train_size for r in rows if r.train_size_label == "all"), default=None)
        full = full or max(int(s.train_size) for s in summary if s.train_size != "all")
        written.append(plot_f1_vs_train_size(summary, out / "f1_vs_train_size.png", int(full)))
    return written
