"""The suite: backbones × corpora × methods × seeds, in one resumable command.

Each (backbone, corpus) pair is a *cell*: a methods × seeds matrix of :mod:`peftner.experiments.matrix`
(each run ``python -m peftner.cli train METHOD`` with the method's defaults, skipped when its
``metrics.json`` exists), with its own results folder (runs.csv, summary.json, table.md, plot) under
``OUT/<backbone>_<corpus>[_<variant>]/``. With ``--storage`` every worker sharing the storage claims runs
from each cell's queue, so N workers split the suite and a restart resumes it. After each cell
``OUT/summary.csv`` is rewritten with one row per (backbone, corpus, method) done so far: partial
results are usable (and committable) while the suite runs.

The default plan (:func:`default_plan`) is issue 21's: both encoders (all-MiniLM-L6-v2, the embedded
default, and multilingual-e5-small) × every built-in corpus × full, LoRA, P-tuning v2, adapters, IA3,
prompt tuning and QLoRA × 3 seeds; SmolLM2-135M × WNUT-16 × LoRA, QLoRA, IA3 (and LoRA with
``--bidirectional``), Gemma-3-270m × WNUT-16 × LoRA, QLoRA, one seed each. The real backbones are
the directories ``benchmarks/real_backbones.py`` builds.
"""

from __future__ import annotations

import csv
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.experiments import storage as shared
from peftner.experiments.matrix import run_matrix
from peftner.experiments.outputs import write_outputs
from peftner.experiments.results import MethodSummary, summarize

SUMMARY_COLUMNS = ("backbone", "dataset", "method", "seeds", "test_f1_mean", "test_f1_std", "trainable_params",
                   "trainable_percent", "adapter_bytes", "peak_memory_mb", "train_tokens_per_second", "metric",
                   "runs", "best_dev_f1_mean")
ENCODER_METHODS = ("full", "lora", "ptuning_v2", "adapter", "ia3", "prompt", "qlora")
CORPORA = ("wnut16", "hebrew-ner", "indonesian-pos", "indonesian-tweets-pos")


@dataclass(frozen=True)
class Cell:
    """One backbone on one corpus: its methods × seeds."""

    backbone: str  # the name in tables
    model: str | None  # --model (None: peftner's embedded default)
    dataset: str  # the name in tables; --dataset unless ``flags`` name the files
    methods: tuple
    seeds: int
    variant: str = ""  # e.g. "bidirectional": shown after the method name
    flags: tuple = field(default=())  # recipe flags of every run of the cell

    @property
    def folder(self) -> str:
        return "_".join(filter(None, [self.backbone, self.dataset, self.variant]))

    def recipe_args(self, extra: list[str]) -> list[str]:
        args = ["--model", self.model] if self.model else []
        if not any(f.endswith("-file") for f in self.flags):
            args += ["--dataset", self.dataset]
        return [*args, *self.flags, *extra]


def default_plan(backbones: Path) -> list[Cell]:
    e5 = str(backbones / "multilingual-e5-small")
    cells = [Cell(name, model, corpus, ENCODER_METHODS, 3)
             for name, model in (("all-MiniLM-L6-v2", None), ("multilingual-e5-small", e5)) for corpus in CORPORA]
    smol, gemma = str(backbones / "smollm2-135m"), str(backbones / "gemma-3-270m")
    return cells + [Cell("smollm2-135m", smol, "wnut16", ("lora", "qlora", "ia3"), 1),
                    Cell("smollm2-135m", smol, "wnut16", ("lora",), 1, "bidirectional", ("--bidirectional",)),
                    Cell("gemma-3-270m", gemma, "wnut16", ("lora", "qlora"), 1)]


def summary_rows(cell: Cell, summary: list[MethodSummary]) -> list[dict]:
    return [{"backbone": cell.backbone, "dataset": cell.dataset,
             "method": s.method + (f" ({cell.variant})" if cell.variant else ""),
             "seeds": " ".join(map(str, s.seeds)), "test_f1_mean": round(s.test_f1_mean, 4),
             "test_f1_std": round(s.test_f1_std, 4), "trainable_params": s.trainable_params,
             "trainable_percent": round(s.trainable_percent, 4), "adapter_bytes": s.adapter_bytes,
             "peak_memory_mb": round(s.peak_memory_mb_mean, 1),
             "train_tokens_per_second": round(s.train_tokens_per_second_mean, 1), "metric": s.metric,
             "runs": s.runs, "best_dev_f1_mean": round(s.best_dev_f1_mean, 4)} for s in summary]


def write_summary(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def run_suite(plan: list[Cell], out: Path, storage=None, extra: list[str] = (), launcher: list[str] | None = None,
              command: str = "", stale_after: float | None = None) -> list[dict]:
    """Run every cell of ``plan`` (resuming: finished runs are skipped); returns summary.csv's rows."""
    from peftner.report import library_versions, machine_description

    rows: list[dict] = []
    for number, cell in enumerate(plan, start=1):
        print(f"suite [{number}/{len(plan)}] {cell.folder}: {', '.join(cell.methods)} x {cell.seeds} seed(s)",
              flush=True)
        folder = out / cell.folder
        args = cell.recipe_args(list(extra))
        runs = run_matrix(storage, folder, cell.methods, cell.seeds, [None], {m: args for m in cell.methods},
                          launcher, stale_after=stale_after, queue=f"suite-{cell.folder}")
        if not runs:
            continue
        summary = summarize(runs)
        info = {"command": command, "machine": machine_description(), "versions": library_versions(),
                "methods": list(cell.methods), "seeds": cell.seeds, "train_sizes": ["all"], "tuned": False,
                "backbone": cell.backbone, "dataset": cell.dataset, "variant": cell.variant}
        write_outputs(folder, runs, summary, info)
        rows += summary_rows(cell, summary)
        write_summary(out / "summary.csv", rows)
    return rows


def main(argv=None, results_dir: str = "results/suite", backbones: str = "backbones",
         prog: str = "peftner suite") -> list[dict]:
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path(results_dir), help="where cells and summary.csv go")
    parser.add_argument("--backbones", type=Path, default=Path(backbones),
                        help="the folder benchmarks/real_backbones.py built the real backbones in")
    parser.add_argument("--only", default=None, help="comma-separated backbones to run (default: all)")
    parser.add_argument("--datasets", default=None, help="comma-separated corpora to run (default: all)")
    parser.add_argument("--extra", default="", help="more recipe flags for every run (quoted)")
    parser.add_argument("--storage", default=None, help="shared storage for several workers (journal file or RDB URL)")
    parser.add_argument("--launcher", default=sys.executable, help="python, or e.g. 'accelerate launch'")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    args = parser.parse_args(argv)
    plan = default_plan(args.backbones)
    for option, attribute in ((args.only, "backbone"), (args.datasets, "dataset")):
        if option:
            wanted = {w.strip() for w in option.split(",") if w.strip()}
            known = {getattr(c, attribute) for c in plan}
            if wanted - known:
                raise PeftnerError(f"--{'only' if attribute == 'backbone' else 'datasets'}: unknown "
                                   f"{', '.join(sorted(wanted - known))}; choose from {', '.join(sorted(known))}")
            plan = [c for c in plan if getattr(c, attribute) in wanted]
    missing = sorted({c.model for c in plan if c.model and not Path(c.model).is_dir()})
    if args.dry_run:
        for cell in plan:
            print(f"{cell.folder}: {', '.join(cell.methods)} x {cell.seeds} seed(s)")
        return []
    if missing:
        raise PeftnerError(f"{missing[0]}: not built; run python benchmarks/real_backbones.py build first "
                           "(or --only all-MiniLM-L6-v2)")
    storage = None
    if args.storage:
        storage = shared.open_storage(args.storage)
        shared.interrupt_on_sigterm()
    command = f"{prog} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    return run_suite(plan, args.results_dir, storage, shlex.split(args.extra), shlex.split(args.launcher), command)
