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


def row_of(spec: RunSpec, metrics: RunMetrics) -> dict:
    row = {k: getattr(metrics, k) if k in RunMetrics.keys() else metrics.extra.get(k) for k in CSV_COLUMNS}
    row.update(method=spec.method, seed=spec.seed, train_size=metrics.train_sentences
               if spec.train_size is None else spec.train_size)
    row["train_size_label"] = "all" if spec.train_size is None else str(spec.train_size)
    return row


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


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
        })
    return summary


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
            f"{s['test_f1_mean']:.4f} ± {s['test_f1_std']:.4f} | {by_seed} | {s['best_dev_f1_mean']:.4f} | "
            f"{s['train_tokens_per_second_mean']:,.0f} | {s['peak_memory_mb_mean']:,.0f} MB | {wall} |")
    return "\n".join(lines) + "\n"


def plot_f1_vs_params(summary: list[dict], path: Path, train_size: str = "all") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in summary if s["train_size"] == train_size] or summary
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in points:
        ax.errorbar(s["trainable_params"], s["test_f1_mean"], yerr=s["test_f1_std"], fmt="o", capsize=4)
        ax.annotate(s["method"], (s["trainable_params"], s["test_f1_mean"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("test " + ("entity F1" if points[0]["metric"] == "entity_f1" else "token accuracy"))
    ax.set_title(f"F1 vs trainable parameters (mean ± std over seeds, train size {points[0]['train_size']})")
    ax.grid(True, which="both", alpha=0.3)
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
    ax.set_title("Data efficiency: F1 vs training-set size (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(out: Path, rows: list[dict], summary: list[dict], info: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*CSV_COLUMNS, "train_size_label"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps({**info, "summary": summary}, indent=2) + "\n")
    (out / "table.md").write_text(f"Command: `{info['command']}`\n\nMachine: {info['machine']}\n\n"
                                  f"Versions: {format_versions(info['versions'])}\n\n" + table_markdown(summary))
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
                      _size(s["adapter_bytes"]), f"{s['test_f1_mean']:.4f} ± {s['test_f1_std']:.4f}",
                      f"{s['best_dev_f1_mean']:.4f}", f"{s['train_tokens_per_second_mean']:,.0f}",
                      f"{s['peak_memory_mb_mean']:,.0f}")
    Console().print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peftner compare",
        description="Run methods x seeds (x training-set sizes) through the recipes; write runs.csv, "
                    "summary.json, table.md and plots to benchmarks/results/<name>/.")
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
    parser.add_argument("--extra", default="", help="more recipe flags, passed to every run (quoted)")
    parser.add_argument("--report-to", default="none",
                        help="experiment trackers for every run (as the recipes' --report-to); all runs go under "
                             "one experiment, each named METHOD_size-N_seed-S")
    parser.add_argument("--experiment", default=None, help="tracker experiment (default: peftner-compare-NAME)")
    return parser


def main(argv=None) -> dict:
    from peftner.report import library_versions, machine_description
    from peftner.trackers import parse_report_to

    args = build_parser().parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        recipe_path(method)
    sizes = parse_train_sizes(args.train_sizes)
    if args.max_train_samples and args.train_sizes:
        raise PeftnerError("use either --max-train-samples or --train-sizes")
    if args.max_train_samples:
        sizes = [args.max_train_samples]
    recipe_args = []
    for flag in ("dataset", "train_file", "validation_file", "test_file", "model", "epochs"):
        value = getattr(args, flag)
        if value is not None:
            recipe_args += [f"--{flag.replace('_', '-')}", str(value)]
    recipe_args += shlex.split(args.extra)
    name = args.name or "_".join(filter(None, [
        args.dataset or ("files" if args.train_file else "wnut16"),
        f"e{args.epochs}" if args.epochs else None,
        f"n{args.max_train_samples}" if args.max_train_samples else None,
        "sizes" if args.train_sizes else None]))
    out = Path(args.results_dir) / name
    if parse_report_to(args.report_to):  # one experiment for the matrix, logs next to its results
        recipe_args += ["--report-to", args.report_to, "--experiment", args.experiment or f"peftner-compare-{name}",
                        "--logging-dir", str(out / "logs")]
    specs = plan_runs(methods, args.seeds, sizes)
    launcher = shlex.split(args.launcher)
    rows = []
    started = time.perf_counter()
    for i, spec in enumerate(specs, start=1):
        run_dir = out / "runs" / spec.key
        cached = (run_dir / "metrics.json").exists()
        print(f"[{i}/{len(specs)}] {spec.key} {'(done before, skipped)' if cached else '...'}", flush=True)
        run_name = ["--run-name", spec.key.replace("/", "_")] if "--report-to" in recipe_args else []
        metrics = run_one(spec, run_dir, recipe_args + run_name, launcher)
        rows.append(row_of(spec, metrics))
        elapsed = time.perf_counter() - started
        print(f"    test F1 {metrics.test_f1:.4f}, {metrics.trainable_params:,} trainable, "
              f"{elapsed / 60:.1f} min so far", flush=True)
    summary = summarize(rows)
    info = {"command": "python benchmarks/compare.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "machine": machine_description(), "versions": library_versions(), "methods": methods,
            "seeds": args.seeds, "train_sizes": [s or "all" for s in sizes]}
    written = write_outputs(out, rows, summary, info)
    print_rich_table(summary)
    print("wrote " + ", ".join(str(p) for p in written))
    return {"summary": summary, "rows": rows, "out": out}


def cli(argv=None):
    try:
        main(argv)
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def compare_arguments(parser):
    parser.add_argument("compare_args", nargs=argparse.REMAINDER, help="flags of benchmarks/compare.py (see --help)")


def compare_command(args) -> int:
    main(args.compare_args)
    return 0
