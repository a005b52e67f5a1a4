"""The method comparison: a matrix of methods × seeds (× training-set sizes), its summary, table and plots.

Each run is the method's recipe in its own process (``python recipes/<method>_ner.py`` or under
``accelerate launch``), so every run takes the same code path as a user's and peak memory is
per run. A run whose ``metrics.json`` exists is skipped, so an interrupted comparison resumes.
``benchmarks/compare.py`` and ``peftner compare`` are thin wrappers around :func:`main`.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.report import RunMetrics, format_versions

# The comparison's default order: cheap reference points first, then the PEFT methods.
DEFAULT_METHODS = ("full", "lora", "adapter", "prompt", "ptuning_v2", "ia3", "int8_lora", "qlora")
SEED_BASE = 42
# runs.csv: these RunMetrics fields of each run, plus the planned train size and the wall time.
CSV_COLUMNS = ("method", "seed", "train_size", "test_f1", "best_dev_f1", "trainable_params", "total_params",
               "trainable_percent", "adapter_bytes", "backbone_bytes", "train_seconds",
               "train_tokens_per_second", "peak_memory_mb", "wall_seconds", "num_processes", "metric")
assert set(CSV_COLUMNS) - {"train_size", "wall_seconds"} <= set(RunMetrics.keys())


@dataclass(frozen=True)
class RunSpec:
    method: str
    seed: int
    train_size: int | None  # None: the whole training split

    @property
    def key(self) -> str:
        size = "all" if self.train_size is None else str(self.train_size)
        return f"{self.method}/size-{size}/seed-{self.seed}"


def plan_runs(methods, seeds: int, train_sizes=(None,)) -> list[RunSpec]:
    return [RunSpec(m, SEED_BASE + s, size) for size in train_sizes for m in methods for s in range(seeds)]


def parse_train_sizes(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            sizes.append(None)
        elif item.isdigit() and int(item) > 0:
            sizes.append(int(item))
        else:
            raise PeftnerError(f"--train-sizes: expected positive integers or 'all', got {item!r}")
    return sizes


def recipe_path(method: str) -> Path:
    path = Path(__file__).resolve().parent.parent / "recipes" / f"{method}_ner.py"
    if not path.exists():
        raise PeftnerError(f"no recipe for method {method!r} ({path} not found)")
    return path


def run_one(spec: RunSpec, run_dir: Path, recipe_args: list[str], launcher: list[str]) -> RunMetrics:
    """Run one recipe in a subprocess (skipped when its metrics.json exists); returns its metrics.

    The wall time of the subprocess is added to metrics.json as ``wall_seconds`` (``extra``).
    """
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        metrics = RunMetrics.read(metrics_path)
        metrics.extra.setdefault("wall_seconds", None)
        return metrics
    command = [*launcher, str(recipe_path(spec.method)), "--seed", str(spec.seed), "--output-dir", str(run_dir),
               *recipe_args]
    if spec.train_size is not None:
        command += ["--max-train-samples", str(spec.train_size)]
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(run_dir / "log.txt", "w", encoding="utf-8") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        tail = (run_dir / "log.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise PeftnerError(f"run {spec.key} failed (exit {result.returncode}); see {run_dir / 'log.txt'}: "
                           + " | ".join(tail))
    metrics = RunMetrics.read(metrics_path)
    metrics.extra["wall_seconds"] = wall
    metrics.write(metrics_path)
    return metrics


def run_matrix(storage, out: Path, methods, seeds: int, sizes, recipe_args: dict[str, list[str]],
               launcher: list[str] | None = None, progress=None, stale_after: float | None = None,
               queue: str | None = None) -> list[dict]:
    """Run methods x seeds x sizes; returns the rows of the runs that have metrics.

    ``recipe_args`` maps each method to its recipe flags. Without ``storage`` this process runs the
    whole matrix in order; with one (:mod:`peftner.sweep`), every worker sharing it claims runs from
    one queue, so N workers split the matrix with no run done twice, and a restart resumes it.
    """
    from peftner import sweep

    launcher = launcher or [sys.executable]
    specs = {spec.key: spec for spec in plan_runs(methods, seeds, sizes)}

    def work(key: str) -> float:
        spec = specs[key]
        flags = recipe_args[spec.method]
        run_name = ["--run-name", key.replace("/", "_")] if "--report-to" in flags else []  # trackers' run name
        return run_one(spec, out / "runs" / key, [*flags, *run_name], launcher).test_f1

    if storage is None:
        started = time.perf_counter()
        for i, key in enumerate(specs, start=1):
            cached = (out / "runs" / key / "metrics.json").exists()
            print(f"[{i}/{len(specs)}] {key} {'(done before, skipped)' if cached else '...'}", flush=True)
            f1 = work(key)
            print(f"    test F1 {f1:.4f}, {(time.perf_counter() - started) / 60:.1f} min so far", flush=True)
    else:
        sweep.run_queue(storage, queue or f"compare-{out.name}", list(specs), work, progress=progress,
                        stale_after=stale_after or sweep.STALE_AFTER, label=f"compare {out.name}")
    rows = []
    for key, spec in specs.items():
        path = out / "runs" / key / "metrics.json"
        if path.exists():
            rows.append(row_of(spec, RunMetrics.read(path)))
    return rows


def row_of(spec: RunSpec, metrics: RunMetrics) -> dict:
    row = {k: getattr(metrics, k) if k in RunMetrics.keys() else metrics.extra.get(k) for k in CSV_COLUMNS}
    row.update(method=spec.method, seed=spec.seed, train_size=metrics.train_sentences
               if spec.train_size is None else spec.train_size)
    row["train_size_label"] = "all" if spec.train_size is None else str(spec.train_size)
    row["settings"] = settings_of(metrics)
    return row


def settings_of(metrics: RunMetrics) -> str:
    """The run's learning rate and the knobs its method's search space varies ("lr 0.001, r 8, ...")."""
    from peftner.tune import space_fields

    values = {**(metrics["config"] or {}), **(metrics["method_config"] or {})}
    if not values:
        return ""
    names = space_fields(metrics["method"] or "")
    parts = []
    for name in names:
        value = values.get(name)
        if value is None:
            value = "default"  # unset: e.g. the architecture's target modules
        elif isinstance(value, list):
            value = ",".join(map(str, value)) or "none"
        parts.append(f"lr {value:.3g}" if name == "learning_rate" else f"{name} {value}")
    return ", ".join(parts)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def f1_cell(entry: dict) -> str:
    """Mean ± sample std over seeds; one seed has no spread to show (not ± 0)."""
    if entry["runs"] < 2:
        return f"{entry['test_f1_mean']:.4f} (1 seed)"
    return f"{entry['test_f1_mean']:.4f} ± {entry['test_f1_std']:.4f}"


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (method, train size): means ± sample std over seeds, sizes from the first run."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row.get("train_size_label", "all")), []).append(row)
    summary = []
    for (method, size), group in groups.items():
        f1_mean, f1_std = mean_std([r["test_f1"] for r in group])
        dev_mean, dev_std = mean_std([r["best_dev_f1"] for r in group])
        first = group[0]
        walls = [r["wall_seconds"] for r in group if r.get("wall_seconds") is not None]
        summary.append({
            "method": method, "train_size": size, "runs": len(group),
            "seeds": sorted(r["seed"] for r in group),
            "trainable_params": first["trainable_params"], "total_params": first["total_params"],
            "trainable_percent": 100.0 * first["trainable_params"] / first["total_params"],
            "adapter_bytes": first["adapter_bytes"], "backbone_bytes": first["backbone_bytes"],
            "test_f1_mean": f1_mean, "test_f1_std": f1_std,
            "test_f1_by_seed": {r["seed"]: r["test_f1"] for r in sorted(group, key=lambda r: r["seed"])},
            "best_dev_f1_mean": dev_mean, "best_dev_f1_std": dev_std,
            "train_tokens_per_second_mean": mean_std([r["train_tokens_per_second"] for r in group])[0],
            "peak_memory_mb_mean": mean_std([r["peak_memory_mb"] for r in group])[0],
            "wall_seconds_mean": mean_std(walls)[0] if walls else None,
            "metric": first.get("metric", "entity_f1"),
            "settings": first.get("settings", ""),
        })
    versus_full(summary)
    return summary


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None when either side has < 2 values
    or neither varies."""
    if len(a) < 2 or len(b) < 2 or (statistics.stdev(a) == 0 and statistics.stdev(b) == 0):
        return None
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def versus_full(summary: list[dict]):
    """Each entry's test-F1 difference to full fine-tuning at the same train size, in F1 points, and
    the Welch p-value over seeds."""
    full = {s["train_size"]: s for s in summary if s["method"] == "full"}
    for s in summary:
        ref = full.get(s["train_size"])
        if ref is None or s is ref:
            s["vs_full_points"], s["vs_full_p"] = None, None
            continue
        s["vs_full_points"] = 100 * (s["test_f1_mean"] - ref["test_f1_mean"])
        s["vs_full_p"] = welch_p(list(s["test_f1_by_seed"].values()), list(ref["test_f1_by_seed"].values()))


def significance_mark(p: float | None) -> str:
    return "n/a" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def tuned_table_markdown(summary: list[dict], sweeps: dict[str, dict]) -> str:
    """The reader's table: tuned settings, F1 over seeds, difference to full with significance, size, time."""
    header = ("| method | tuned settings | search (trials: complete / pruned) | best dev F1 in search | "
              "trainable params | % of total | adapter on disk | test F1 (mean ± std) | test F1 by seed | "
              "vs full (F1 points) | time per run |")
    lines = [header, "|" + "---|" * 11]
    for s in summary:
        sw = sweeps.get(s["method"], {})
        search = f"{sw['done']}: {sw['complete']} / {sw['pruned']}" if sw else "not tuned"
        best_dev = f"{sw['best_dev_f1']:.4f}" if sw.get("best_dev_f1") is not None else "n/a"
        vs = ("reference" if s["method"] == "full" else "n/a" if s["vs_full_points"] is None else
              f"{s['vs_full_points']:+.2f} ({significance_mark(s['vs_full_p'])}"
              + (f", p {s['vs_full_p']:.3f})" if s["vs_full_p"] is not None else ")"))
        wall = f"{s['wall_seconds_mean']:.0f} s" if s["wall_seconds_mean"] is not None else "n/a"
        by_seed = " / ".join(f"{f1:.3f}" for f1 in s["test_f1_by_seed"].values())
        # the winner's flags as given (a run's config holds resolved values, e.g. all-linear's regex)
        settings = f"`{sw['best_flags']}`" if sw.get("best_flags") else s["settings"].replace("|", "\\|")
        lines.append(f"| {s['method']} | {settings} | {search} | {best_dev} | {s['trainable_params']:,} | "
                     f"{s['trainable_percent']:.3f}% | {_size(s['adapter_bytes'])} | "
                     f"{f1_cell(s)} | {by_seed} | {vs} | {wall} |")
    lines += ["", "vs full: difference of mean test F1 to full fine-tuning in F1 points; significance by Welch's "
              "t-test (two-sided, unequal variances) over the seeds' test F1: ** p < 0.01, * p < 0.05, n.s. not "
              "significant. With 3 seeds per side only large differences can reach significance."]
    return "\n".join(lines) + "\n"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def table_markdown(summary: list[dict]) -> str:
    header = ("| method | train size | trainable params | % of total | adapter on disk | backbone in memory | "
              "test F1 (mean ± std) | test F1 by seed | best dev F1 | train tokens/s | peak memory | wall time |")
    lines = [header, "|" + "---|" * 12]
    for s in summary:
        wall = f"{s['wall_seconds_mean']:.0f} s" if s["wall_seconds_mean"] is not None else "n/a"
        by_seed = " / ".join(f"{f1:.3f}" for f1 in s["test_f1_by_seed"].values())  # spots a collapsed seed
        lines.append(
            f"| {s['method']} | {s['train_size']} | {s['trainable_params']:,} | {s['trainable_percent']:.3f}% | "
            f"{_size(s['adapter_bytes'])} | {_size(s['backbone_bytes'])} | "
            f"{f1_cell(s)} | {by_seed} | {s['best_dev_f1_mean']:.4f} | "
            f"{s['train_tokens_per_second_mean']:,.0f} | {s['peak_memory_mb_mean']:,.0f} MB | {wall} |")
    return "\n".join(lines) + "\n"


def pareto_front(points: list[dict]) -> list[dict]:
    """Entries no other entry beats with as few or fewer trainable parameters (by mean test F1)."""
    front, best = [], float("-inf")
    for s in sorted(points, key=lambda s: (s["trainable_params"], -s["test_f1_mean"])):
        if s["test_f1_mean"] > best:
            front.append(s)
            best = s["test_f1_mean"]
    return front


def spread_labels(xs: list[float], ys: list[float], gap: float, near_decades: float = 0.6) -> list[float]:
    """Label heights at least ``gap`` apart among points whose x (log scale) is near: so methods with
    the same parameter count do not print on top of each other."""
    import math

    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed: list[int] = []
    out = list(ys)
    for i in order:
        for j in placed:
            if abs(math.log10(xs[i]) - math.log10(xs[j])) < near_decades and out[i] < out[j] + gap:
                out[i] = out[j] + gap
        placed.append(i)
    return out


def plot_f1_vs_params(summary: list[dict], path: Path, train_size: str = "all") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in summary if s["train_size"] == train_size] or summary
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(8, 5))
    # Methods with the same parameter count sit side by side (a small shift on the log axis), so each
    # error bar stays visible.
    same = {}
    for s in points:
        same.setdefault(s["trainable_params"], []).append(s)
    shown = {}
    for count, group in same.items():
        for k, s in enumerate(sorted(group, key=lambda s: s["test_f1_mean"])):
            shown[id(s)] = count * 1.07 ** (k - (len(group) - 1) / 2)
    for s in points:
        on_front = any(s is f for f in front)
        ax.errorbar(shown[id(s)], s["test_f1_mean"], yerr=s["test_f1_std"], fmt="o", capsize=3,
                    color="tab:red" if on_front else "tab:blue", markersize=7 if on_front else 5)
    fx = [f["trainable_params"] for f in front]
    fy = [f["test_f1_mean"] for f in front]
    ax.step(fx + [max(s["trainable_params"] for s in points) * 1.5], fy + fy[-1:], where="post", color="tab:red",
            alpha=0.5, linestyle="--", label="Pareto front (no method scores higher with fewer parameters)")
    lows = [s["test_f1_mean"] - s["test_f1_std"] for s in points]
    highs = [s["test_f1_mean"] + s["test_f1_std"] for s in points]
    span = max(max(highs) - min(lows), 0.05)
    xs = [s["trainable_params"] for s in points]
    heights = spread_labels(xs, [s["test_f1_mean"] for s in points], gap=0.06 * span)
    for s, height in zip(points, heights):
        ax.annotate(s["method"], (shown[id(s)], s["test_f1_mean"]), xytext=(s["trainable_params"] * 1.6, height),
                    textcoords="data", fontsize=9, va="center",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.7})
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 2, max(xs) * 8)
    ax.set_ylim(min(lows) - 0.05 * span, max(max(highs), max(heights)) + 0.08 * span)
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test " + ("entity F1" if points[0]["metric"] == "entity_f1" else "token accuracy"))
    spread = "mean ± std over seeds" if any(p["runs"] > 1 for p in points) else "one seed"
    ax.set_title(f"F1 vs trainable parameters ({spread}, train size {points[0]['train_size']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_f1_vs_train_size(summary: list[dict], path: Path, full_size: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(s["method"] for s in summary):
        points = sorted(((full_size if s["train_size"] == "all" else int(s["train_size"])), s["test_f1_mean"],
                         s["test_f1_std"]) for s in summary if s["method"] == method)
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("training sentences (log scale)")
    ax.set_ylabel("test F1")
    spread = "mean ± std over seeds" if any(s["runs"] > 1 for s in summary) else "one seed"
    ax.set_title(f"Data efficiency: F1 vs training-set size ({spread})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(out: Path, rows: list[dict], summary: list[dict], info: dict,
                  sweeps: dict[str, dict] | None = None) -> list[Path]:
    """runs.csv, summary.json, table.md and plots; ``sweeps`` (method: search summary) selects the
    tuned table."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_COLUMNS, "train_size_label", "settings"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps({**info, "summary": summary, "sweeps": sweeps}, indent=2) + "\n")
    table = tuned_table_markdown(summary, sweeps) if sweeps is not None else table_markdown(summary)
    (out / "table.md").write_text(f"Command: `{info['command']}`\n\nMachine: {info['machine']}\n\n"
                                  f"Versions: {format_versions(info['versions'])}\n\n" + table)
    written = [out / "runs.csv", out / "summary.json", out / "table.md", plot_f1_vs_params(summary, out / "f1_vs_params.png")]
    if len({s["train_size"] for s in summary}) > 1:
        full = max((r["train_size"] for r in rows if r["train_size_label"] == "all"), default=None)
        full = full or max(int(s["train_size"]) for s in summary if s["train_size"] != "all")
        written.append(plot_f1_vs_train_size(summary, out / "f1_vs_train_size.png", int(full)))
    return written


def print_rich_table(summary: list[dict]):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="peftner: trainable parameters vs F1")
    for column in ("method", "size", "trainable", "%", "adapter", "test F1", "dev F1", "tok/s", "peak MB"):
        table.add_column(column, justify="left" if column in ("method", "size") else "right")
    for s in summary:
        table.add_row(s["method"], s["train_size"], f"{s['trainable_params']:,}", f"{s['trainable_percent']:.3f}",
                      _size(s["adapter_bytes"]), f1_cell(s),
                      f"{s['best_dev_f1_mean']:.4f}", f"{s['train_tokens_per_second_mean']:,.0f}",
                      f"{s['peak_memory_mb_mean']:,.0f}")
    Console().print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peftner compare", description=DESCRIPTION)
    compare_arguments(parser)
    return parser


DESCRIPTION = ("Run methods x seeds (x training-set sizes) through the recipes; write runs.csv, summary.json, "
               "table.md and plots to benchmarks/results/<name>/.")


def compare_arguments(parser):
    """benchmarks/compare.py's flags, also those of ``peftner compare``."""
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated methods")
    parser.add_argument("--seeds", type=int, default=3, help=f"number of seeds ({SEED_BASE}, {SEED_BASE + 1}, ...)")
    parser.add_argument("--train-sizes", default=None, help="e.g. 100,300,1000,all: nested training subsets")
    parser.add_argument("--name", default=None, help="results folder name (default: derived from the options)")
    parser.add_argument("--results-dir", default=str(Path(__file__).resolve().parent.parent / "benchmarks" / "results"))
    parser.add_argument("--launcher", default=f"{shlex.quote(sys.executable)}",
                        help="how to start a recipe, e.g. 'accelerate launch --num_processes 2'")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--train-file", default=None)
    parser.add_argument("--validation-file", default=None)
    parser.add_argument("--test-file", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default: each recipe's default")
    parser.add_argument("--max-train-samples", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per run instead of epochs (equal budgets across --train-sizes)")
    parser.add_argument("--extra", default="", help="more recipe flags, passed to every run (quoted)")
    parser.add_argument("--tune", action="store_true",
                        help="search each method's hyperparameters on dev first (peftner tune), then run the "
                             "winners x seeds on test")
    from peftner.tune import add_sweep_arguments

    add_sweep_arguments(parser, with_results_dir=False)
    parser.add_argument("--report-to", default="none",
                        help="experiment trackers for every run (as the recipes' --report-to); all runs go under "
                             "one experiment, each named METHOD_size-N_seed-S")
    parser.add_argument("--experiment", default=None, help="tracker experiment (default: peftner-compare-NAME)")


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    return compare(build_parser().parse_args(argv), argv)


def compare(args, argv: list[str]) -> dict:
    """The matrix of ``args``; ``argv`` (its flags as typed) is recorded as the results' command."""
    from peftner.report import library_versions, machine_description
    from peftner.trackers import parse_report_to
    from peftner.tune import check_sweep_arguments
    from peftner.validation import check_at_least

    check_sweep_arguments(args)
    check_at_least(args, {"seeds": 1, "epochs": 1, "steps": 1, "max_train_samples": 1})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        recipe_path(method)
    sizes = parse_train_sizes(args.train_sizes)
    if args.max_train_samples and args.train_sizes:
        raise PeftnerError("use either --max-train-samples or --train-sizes")
    if args.steps and args.epochs:
        raise PeftnerError("use either --epochs or --steps")
    if args.max_train_samples:
        sizes = [args.max_train_samples]
    recipe_args = []
    for flag in ("dataset", "train_file", "validation_file", "test_file", "model", "epochs"):
        value = getattr(args, flag)
        if value is not None:
            recipe_args += [f"--{flag.replace('_', '-')}", str(value)]
    if args.steps:  # equal budgets: the same optimizer steps for every size, 5 dev evaluations
        recipe_args += ["--max-steps", str(args.steps), "--eval-steps", str(max(1, args.steps // 5))]
    recipe_args += shlex.split(args.extra)
    name = args.name or "_".join(filter(None, [
        args.dataset or ("files" if args.train_file else "wnut16"),
        f"e{args.epochs}" if args.epochs else None,
        f"steps{args.steps}" if args.steps else None,
        f"n{args.max_train_samples}" if args.max_train_samples else None,
        "sizes" if args.train_sizes else None,
        "tuned" if args.tune else None]))
    out = Path(args.results_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    storage = None
    if args.storage or args.tune:
        from peftner import sweep

        storage = sweep.open_storage(args.storage or str(out / "study.journal"))
        sweep.interrupt_on_sigterm()
    per_method = {m: list(recipe_args) for m in methods}
    progress = None
    if args.tune:  # the trials log to no tracker: only the matrix's runs do
        per_method, progress = tune_methods(args, storage, out, methods, recipe_args)
    if parse_report_to(args.report_to):  # one experiment for the matrix, logs next to its results
        tracking = ["--report-to", args.report_to, "--experiment", args.experiment or f"peftner-compare-{name}",
                    "--logging-dir", str(out / "logs")]
        per_method = {m: [*flags, *tracking] for m, flags in per_method.items()}
    info = {"command": "python benchmarks/compare.py " + " ".join(shlex.quote(a) for a in argv),
            "machine": machine_description(), "versions": library_versions(), "methods": methods,
            "seeds": args.seeds, "train_sizes": [s or "all" for s in sizes], "tuned": bool(args.tune)}
    result = {"summary": None, "rows": [], "out": out}

    def matrix() -> list[dict]:
        return run_matrix(storage, out, methods, args.seeds, sizes, per_method, shlex.split(args.launcher),
                          progress, args.stale_after)

    def report(rows: list[dict]):
        summary = summarize(rows)
        sweeps = None
        if args.tune:
            from peftner.tune import sweep_summaries

            sweeps = sweep_summaries(storage, out, methods)
        written = write_outputs(out, rows, summary, info, sweeps)
        print_rich_table(summary)
        print("wrote " + ", ".join(str(p) for p in written))
        result.update(summary=summary, rows=rows)

    finish(storage, out.name, matrix, report, len(plan_runs(methods, args.seeds, sizes)))
    if progress:
        progress.close()
    return result


def finish(storage, name: str, matrix, report, expected: int, poll: float = 10.0):
    """Run this worker's share of the matrix, then the report, written by exactly one worker.

    Without a storage: the matrix, then the report. With one, the report is itself a queued job: the
    worker that claims it keeps taking runs left by dead workers until every run has metrics.
    """
    rows = matrix()
    if storage is None:
        report(rows)
        return
    from peftner import sweep

    def report_job(_key: str) -> float:
        current = rows
        while len(current) < expected:
            time.sleep(poll)
            current = matrix()
        report(current)
        return float(len(current))

    sweep.run_queue(storage, f"report-{name}", [f"report of {expected} runs"], report_job, label="report")


def tune_methods(args, storage, out: Path, methods, recipe_args: list[str]):
    """``--tune``: each method's search (shared by all workers), then its winner's flags per method."""
    import tempfile

    from peftner import sweep, tune
    from peftner.methods import get_method

    progress = sweep.ProgressLine()
    base = [*recipe_args, *tune.budget_argv(args)]
    n_trials = args.n_trials or tune.DEFAULT_TRIALS
    studies = {}
    with tempfile.TemporaryDirectory(prefix="peftner-tune-") as tmp:
        for name in methods:
            studies[name] = tune.search(get_method(name), storage, tune.study_name(name), n_trials, base,
                                        Path(tmp) / name, progress, args.stale_after,
                                        status=lambda: tune.sweep_status(storage, methods, n_trials))
    per_method = {}
    for name, study in studies.items():
        tune.wait_for_search(study, storage, args.stale_after, progress, n_trials)
        sweep.export_csv(study, out / f"trials_{name}.csv")
        per_method[name] = [*recipe_args, *tune.winner_flags(study)]
    return per_method, progress


def cli(argv=None):
    try:
        main(argv)
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def compare_command(args) -> int:
    compare(args, sys.argv[2:] if sys.argv[1:2] == ["compare"] else [])
    return 0
