"""A suite's report, written from whichever runs have finished: summary.csv and summary.json, a table
per corpus, each method's mean gap to full fine-tuning and mean rank across corpora, the quality
target, and the plots (parameters vs F1 per backbone; Pareto fronts for a tuned cell)."""

from __future__ import annotations

import csv
import dataclasses
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from peftner.experiments.results import MethodSummary, RunRow, row_of, summarize
from peftner.experiments.suite_plan import Cell
from peftner.experiments.tables import f1_cell, format_bytes
from peftner.markdown import markdown_table
from peftner.report import RunMetrics, library_versions, machine_description, model_label

# summary.csv: the columns first, then what the tables also show
SUMMARY_COLUMNS = ("backbone", "dataset", "method", "setting", "seeds", "test_f1_mean", "test_f1_std", "trainable_params",
                   "trainable_percent", "adapter_bytes", "peak_memory_mb", "train_tokens_per_second",
                   "best_dev_f1_mean", "vs_full_points", "metric", "model", "model_note", "seeds_learned_nothing")
PEFT_SHARE = 1.0  # "parameter-efficient" in the quality target: at most 1 % of the parameters train
TARGET_POINTS = 0.5  # ... within this many F1 points of full fine-tuning (the quality target)
TARGET_SEEDS = 3  # the quality target compares means over this many seeds; a cell with fewer is still running


@dataclass
class SuiteRow:
    """A line of summary.csv: one method on one backbone and corpus, over its seeds."""

    backbone: str
    dataset: str
    summary: MethodSummary
    model: str
    model_note: str  # where the weights came from (a dequantized 4-bit checkpoint says so)
    machine: str  # where its runs ran (recorded by each run)
    setting: str = "defaults"  # the recipe's defaults, or "tuned (N trials)" on dev first
    # a tuned winner's learning rate in the top or bottom tenth of its searched range (log scale): "top",
    # "bottom", or "" (inside, or not searched); a wider range might have done better
    range_edge: str = ""
    learning_rate: float | None = None  # the runs' learning rate (the first run's: a label's runs share it)

    def as_csv(self) -> dict:
        s = self.summary
        values = {**dataclasses.asdict(s), "backbone": self.backbone, "dataset": self.dataset, "setting": self.setting,
                  "seeds": s.runs, "train_tokens_per_second": s.train_tokens_per_second_mean,
                  "peak_memory_mb": s.peak_memory_mb_mean, "model": self.model, "model_note": self.model_note}
        return {k: values[k] for k in SUMMARY_COLUMNS}


def collect(cells: list[Cell], out: Path) -> list[SuiteRow]:
    """The summary of every cell from the runs that have finished (labels in plan order)."""
    rows = []
    for cell in cells:
        runs: list[RunRow] = []
        notes = {}
        for label in cell.labels:
            for seed_dir in sorted((out / cell.backbone / cell.folder / "runs" / label / "size-all").glob("seed-*")):
                path = seed_dir / "metrics.json"
                if path.exists():
                    metrics = RunMetrics.read(path)
                    runs.append(row_of(label, int(metrics.seed), None, metrics))
                    if label not in notes:  # the label's first run speaks for its model, machine and settings
                        notes[label] = (model_label(metrics.model or ""), model_note(metrics), metrics.machine,
                                        range_edge(cell.labels[label][0], metrics) if cell.tune else "",
                                        (metrics.config or {}).get("learning_rate"))
        for summary in summarize(runs):
            model, note, machine, edge, rate = notes[summary.method]
            rows.append(SuiteRow(cell.backbone, cell.dataset, summary, model, note, machine or "unknown",
                                 cell.setting, edge, rate))
    return rows


EDGE = 0.1  # of the searched range's width on a log scale


def range_edge(method: str, metrics: RunMetrics) -> str:
    """Where a searched run's learning rate lies in ``method``'s search range: "top", "bottom" or ""."""
    import math

    from peftner.methods import get_method
    from peftner.methods.space import LogUniform

    span = get_method(method).search_space.get("learning_rate")
    rate = (metrics.config or {}).get("learning_rate")
    if not isinstance(span, LogUniform) or not rate:
        return ""
    place = (math.log(rate) - math.log(span.low)) / (math.log(span.high) - math.log(span.low))
    return "top" if place >= 1 - EDGE else "bottom" if place <= EDGE else ""


def model_note(metrics: RunMetrics) -> str:
    """What the run's metrics say about the backbone's weights (provenance of a converted checkpoint)."""
    from peftner.report import describe_backbone

    if metrics.backbone:  # a backbone built from package files (peftner.models.packaged)
        return describe_backbone(metrics.backbone)
    provenance = metrics.extra.get("model_provenance") or {}
    if isinstance(provenance, dict) and provenance:
        return str(provenance.get("note") or provenance.get("source") or "")
    return ""


def by_cell(rows: list[SuiteRow]) -> dict[tuple[str, str, str], list[SuiteRow]]:
    """Rows grouped by (backbone, corpus, setting), in plan order."""
    groups: dict[tuple[str, str, str], list[SuiteRow]] = {}
    for row in rows:
        groups.setdefault((row.backbone, row.dataset, row.setting), []).append(row)
    return groups


def cross_corpus(rows: list[SuiteRow]) -> list[dict]:
    """Per backbone, setting and method: mean gap to full fine-tuning (F1 points) and mean rank over its
    corpora (rank 1: the best test F1 of its cell)."""
    gaps: dict[tuple[str, str, str], list[float]] = {}
    ranks: dict[tuple[str, str, str], list[int]] = {}
    shares: dict[tuple[str, str, str], float] = {}
    for (backbone, _, setting), cell_rows in by_cell(rows).items():
        for rank, row in enumerate(sorted(cell_rows, key=lambda r: -r.summary.test_f1_mean), start=1):
            key = (backbone, setting, row.summary.method)
            ranks.setdefault(key, []).append(rank)
            shares.setdefault(key, row.summary.trainable_percent)
            if row.summary.vs_full_points is not None:
                gaps.setdefault(key, []).append(row.summary.vs_full_points)
    result = [{"backbone": backbone, "setting": setting, "method": method, "corpora": len(method_ranks),
               "trainable_percent": shares[(backbone, setting, method)], "mean_rank": statistics.fmean(method_ranks),
               "mean_gap_to_full": statistics.fmean(gaps[key]) if gaps.get(key) else None}
              for key, method_ranks in ranks.items() for backbone, setting, method in [key]]
    return sorted(result, key=lambda r: (r["backbone"], r["setting"], r["mean_rank"]))


def quality_target(rows: list[SuiteRow]) -> list[dict]:
    """Per cell: the best method at ≤ PEFT_SHARE % trainable parameters against full fine-tuning."""
    result = []
    for (backbone, dataset, setting), cell_rows in by_cell(rows).items():
        full = next((r.summary for r in cell_rows if r.summary.method == "full"), None)
        efficient = [r.summary for r in cell_rows if r.summary.trainable_percent <= PEFT_SHARE]
        if full is None or not efficient:
            continue
        best = max(efficient, key=lambda s: s.test_f1_mean)
        gap = 100 * (best.test_f1_mean - full.test_f1_mean)
        result.append({"backbone": backbone, "dataset": dataset, "setting": setting, "best_method": best.method,
                       "best_f1": best.test_f1_mean, "full_f1": full.test_f1_mean, "gap_points": gap,
                       "met": gap >= -TARGET_POINTS, "seeds": min(best.runs, full.runs)})
    return result


def defaults_transfer(rows: list[SuiteRow]) -> str:
    """Whether the recipes' defaults, tuned on peftner's default backbone and corpus, meet the quality target
    on the suite's other cells: one sentence ("" before any such cell has both methods' seeds)."""
    from peftner.config import TrainConfig, default_model

    origin = (model_label(default_model()), TrainConfig.dataset)
    elsewhere = [r for r in rows if r.setting == "defaults" and (r.model, r.dataset) != origin]
    cells = quality_target(elsewhere)
    done = [t for t in cells if t["seeds"] >= TARGET_SEEDS]
    if not done:
        return ""
    met = [f"{t['backbone']} on {t['dataset']}" for t in done if t["met"]]
    missed = [f"{t['backbone']} on {t['dataset']} (gap {t['gap_points']:+.2f} F1 points)" for t in done if not t["met"]]
    partial = len(cells) - len(done)
    verdicts = [f"met on {len(met)} of {len(done)}" + (f" ({', '.join(met)})" if met else "")]
    verdicts += [f"missed on {', '.join(missed)}"] if missed else []
    verdicts += [f"{partial} more cell{'s have' if partial > 1 else ' has'} fewer seeds so far"] if partial else []
    return (f"The recipes' defaults were tuned on {origin[0]} × {origin[1]} (docs/benchmarks.md, Tuned comparison). "
            f"On the other backbone × corpus cells with {TARGET_SEEDS} seeds of both methods, the target is "
            + "; ".join(verdicts) + ".")


def tables_markdown(rows: list[SuiteRow]) -> str:
    """One table per cell, then the cross-corpus summary and the quality target."""
    lines = []
    for (backbone, dataset, setting), cell_rows in by_cell(rows).items():
        lines += [f"#### {backbone} on {dataset}" + ("" if setting == "defaults" else f", {setting}"), ""]
        lines += markdown_table(
            {"method": "l", "seeds": "r", "trainable params": "r", "% of total": "r", "adapter on disk": "r",
             "test F1 (mean ± std)": "l", "vs full (F1 points)": "r", "train tokens/s": "r", "peak memory": "r"},
            ([s.method, s.runs, f"{s.trainable_params:,}", f"{s.trainable_percent:.3f}%", format_bytes(s.adapter_bytes),
              f1_cell(s), _points(s.vs_full_points, s.method), f"{s.train_tokens_per_second_mean:,.0f}",
              f"{s.peak_memory_mb_mean:,.0f} MB"] for s in (r.summary for r in cell_rows)))
        notes = sorted({r.model_note for r in cell_rows if r.model_note})
        lines += ([""] + [f"Backbone: {note}" for note in notes] if notes else []) + [""]
        edges = [f"{r.summary.method} ({r.range_edge}, lr {r.learning_rate:.3g})" for r in cell_rows if r.range_edge]
        if edges:
            lines += [f"Winning learning rate within {EDGE:.0%} of an end of its searched range (log scale; a wider "
                      f"range might do better): {', '.join(edges)}.", ""]
    summary = cross_corpus(rows)
    if summary:
        lines += ["#### Across corpora", ""]
        lines += markdown_table(
            {"backbone": "l", "setting": "l", "method": "l", "corpora": "r", "% trainable": "r", "mean rank": "r",
             "mean gap to full (F1 points)": "r"},
            ([s["backbone"], s["setting"], s["method"], s["corpora"], f"{s['trainable_percent']:.3f}%",
              f"{s['mean_rank']:.2f}", _points(s["mean_gap_to_full"], s["method"])] for s in summary))
        lines.append("")
    target = quality_target(rows)
    if target:
        lines += [f"#### Quality target: the best method at ≤ {PEFT_SHARE:g} % trainable within "
                  f"{TARGET_POINTS:g} F1 points of full", ""]
        lines += markdown_table(
            {"backbone": "l", "corpus": "l", "setting": "l", f"best ≤ {PEFT_SHARE:g} % method": "l", "its test F1": "r",
             "full": "r", "gap (F1 points)": "r", "met": "l", "seeds": "r"},
            ([t["backbone"], t["dataset"], t["setting"], t["best_method"], f"{t['best_f1']:.4f}",
              f"{t['full_f1']:.4f}", f"{t['gap_points']:+.2f}", "yes" if t["met"] else "no", t["seeds"]]
             for t in target))
        lines.append("")
        transfer = defaults_transfer(rows)
        lines += [transfer, ""] if transfer else []
    return "\n".join(lines)


def _points(gap: float | None, method: str) -> str:
    """A difference to full fine-tuning in F1 points (full itself: the reference)."""
    return "reference" if method == "full" else "n/a" if gap is None else f"{gap:+.2f}"


def plot_per_backbone(rows: list[SuiteRow], out: Path) -> list[Path]:
    """``f1_vs_params_<backbone>.png``: every method on every corpus of the backbone (one colour per corpus)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for backbone in dict.fromkeys(r.backbone for r in rows):
        mine = [r for r in rows if r.backbone == backbone]
        fig, ax = plt.subplots(figsize=(8, 5))
        for (_, dataset, setting), cell_rows in by_cell(mine).items():
            points = sorted((r.summary for r in cell_rows), key=lambda s: s.trainable_params)
            ax.errorbar([s.trainable_params for s in points], [s.test_f1_mean for s in points],
                        yerr=[s.test_f1_std for s in points], fmt="o-", capsize=3, alpha=0.8,
                        label=dataset + ("" if setting == "defaults" else f" ({setting})"))
            for s in points:
                ax.annotate(s.method, (s.trainable_params, s.test_f1_mean), xytext=(4, 4),
                            textcoords="offset points", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale)")
        ax.set_ylabel("test F1 (mean ± std over seeds)")
        ax.set_title(f"{backbone}: F1 vs trainable parameters, per corpus")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"f1_vs_params_{backbone}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_report(cells: list[Cell], out: Path, command: str) -> list[Path]:
    """summary.csv, summary.json, tables.md and the plots, from the finished runs."""
    rows = collect(cells, out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(r.as_csv() for r in rows)
    planned = sum(len(c.labels) * c.seeds for c in cells)
    finished = sum(r.summary.runs for r in rows)
    machines = sorted({r.machine for r in rows}) or [machine_description()]
    info = {"command": command, "machine": "; ".join(machines), "versions": library_versions(),
            "planned_runs": planned, "finished_runs": finished,
            "rows": [{**r.as_csv(), "test_f1_by_seed": r.summary.test_f1_by_seed, "range_edge": r.range_edge}
                     for r in rows],
            "across_corpora": cross_corpus(rows), "quality_target": quality_target(rows)}
    (out / "summary.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (out / "tables.md").write_text(f"Command: `{command}` ({finished} of {planned} planned runs finished)\n\n"
                                   f"Machine (where the runs ran): {info['machine']}\n\n" + tables_markdown(rows),
                                   encoding="utf-8")
    return [out / "summary.csv", out / "summary.json", out / "tables.md", *plot_per_backbone(rows, out),
            *plot_tuned_cells(rows, out)]


def plot_tuned_cells(rows: list[SuiteRow], out: Path) -> list[Path]:
    """A tuned cell (each method searched first: the all-methods comparison) gets F1 against
    trainable parameters and against peak memory, each with its Pareto front:
    ``pareto_{params,memory}_<backbone>_<dataset>-tuned.png``."""
    from peftner.experiments.plots import COSTS, plot_f1_vs_cost

    written = []
    for (backbone, dataset, setting), cell_rows in by_cell(rows).items():
        if setting == "defaults":
            continue
        summaries = [r.summary for r in cell_rows]
        seeds = "/".join(sorted({str(r.summary.runs) for r in cell_rows}))
        for cost, axis in COSTS.items():
            written.append(plot_f1_vs_cost(summaries, out / tuned_plot_name(axis.file_part, backbone, dataset),
                                           summaries[0].train_size, cost=cost,
                                           title=f"{backbone} on {dataset}, each method {setting}: F1 vs {axis.name} "
                                                 f"({seeds} seeds)"))
    return written


def tuned_plot_name(file_part: str, backbone: str, dataset: str) -> str:
    """The file of a tuned cell's Pareto plot (``plots.COSTS[...].file_part``: params, memory)."""
    return f"pareto_{file_part}_{backbone}_{dataset}-tuned.png"
