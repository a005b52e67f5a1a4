"""The suite: backbone × corpus × method × seed, each method with its recipe defaults, through the run queue.

A plan (YAML; the committed one is ``benchmarks/suite.yaml``) lists entries, each a backbone (a name
and its ``--model``), the corpora (``--dataset`` names), the methods and the seeds::

    seeds: 3
    extra: --keep-checkpoints 0            # flags of every run
    entries:
      - backbone: minilm                   # no model: the embedded default
        datasets: [wnut16]
        methods: [full, lora, ia3]
      - backbone: smollm2-135m
        model: ../backbones/smollm2-135m   # relative to the plan file
        datasets: [wnut16]
        methods: [lora, {lora_bidirectional: lora --bidirectional}]   # a label: a method and its flags
        seeds: 1
      - backbone: minilm
        datasets: [conll2003]
        methods: [[lora, full], [ia3]]     # groups: every seed of lora and full before ia3 starts

Each (backbone, corpus) cell is one run matrix under ``RESULTS/<backbone>/<dataset>/`` that every
worker sharing the storage splits (:mod:`peftner.experiments.matrix`): start the same command N
times; a restart resumes where it stopped. The report — ``summary.csv`` (one row per backbone,
corpus and method), ``summary.json``, a table per corpus, each method's mean gap to full fine-tuning
and mean rank across corpora, and a parameters-vs-F1 plot per backbone — is written from whatever
runs have finished, so partial results can be committed and the report regenerated later
(``--report-only``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError, interrupt_on_sigterm
from peftner.experiments import search
from peftner.experiments import storage as shared
from peftner.experiments.matrix import MATRIX_FLAGS, Matrix, run_matrix
from peftner.experiments.results import MethodSummary, RunRow, row_of, summarize
from peftner.experiments.tables import f1_cell, format_bytes
from peftner.methods import METHODS
from peftner.report import RunMetrics, library_versions, machine_description, model_label

# summary.csv: the columns first, then what the tables also show
SUMMARY_COLUMNS = ("backbone", "dataset", "method", "setting", "seeds", "test_f1_mean", "test_f1_std", "trainable_params",
                   "trainable_percent", "adapter_bytes", "peak_memory_mb", "train_tokens_per_second",
                   "best_dev_f1_mean", "vs_full_points", "metric", "model", "model_note")
PEFT_SHARE = 1.0  # "parameter-efficient" in the quality target: at most 1 % of the parameters train


@dataclass(frozen=True)
class Cell:
    """One backbone on one corpus: a run matrix of labels (method + flags) × seeds."""

    backbone: str
    model: str | None
    dataset: str
    data_flags: list[str]  # --dataset NAME, or the files of a corpus given by flags
    labels: dict[str, tuple[str, list[str]]]  # label -> (method, its extra flags)
    seeds: int
    extra: list[str] = field(default_factory=list)
    reuse: Path | None = None  # a matrix folder whose runs of the same flags count as this cell's
    tune: dict | None = None  # {"n_trials": N, "budget": [flags]}: each method searched on dev first
    groups: list[list[str]] | None = None  # labels in groups run one after another (None: one group)

    @property
    def folder(self) -> str:
        return self.dataset + ("-tuned" if self.tune else "")

    @property
    def name(self) -> str:
        return f"{self.backbone}/{self.folder}"

    @property
    def setting(self) -> str:
        return f"tuned ({self.tune['n_trials']} trials)" if self.tune else "defaults"


def load_plan(path: Path) -> list[Cell]:
    """The cells of a plan file, every value checked (one line naming the file, entry and key)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PeftnerError(f"{path}: cannot be read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise PeftnerError(f"{path}{f':{mark.line + 1}' if mark else ''}: invalid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list) or not data["entries"]:
        raise PeftnerError(f"{path}: expected a mapping with a non-empty list 'entries'")
    unknown = set(data) - {"seeds", "extra", "entries"}
    if unknown:
        raise PeftnerError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected seeds, extra, entries)")
    seeds = _count(data.get("seeds", 3), f"{path}: seeds")
    extra = _split_flags(data.get("extra"), f"{path}: extra")
    cells, seen = [], set()
    for number, entry in enumerate(data["entries"], start=1):
        where = f"{path}: entry {number}"
        if not isinstance(entry, dict):
            raise PeftnerError(f"{where}: expected a mapping (backbone, model, datasets, methods, seeds, extra)")
        unknown = set(entry) - {"backbone", "model", "datasets", "methods", "seeds", "extra", "reuse", "tune"}
        if unknown:
            raise PeftnerError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        backbone = entry.get("backbone")
        if not isinstance(backbone, str) or not backbone.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise PeftnerError(f"{where}: backbone must be a name of letters, digits, '-', '_' or '.', got {backbone!r}")
        model = entry.get("model")
        if model is not None:
            model = str(model)
            if model.startswith((".", "/")):  # a local directory: relative to the plan file
                model = str((path.parent / model).resolve())
        datasets = _datasets(entry.get("datasets"), path, where)
        labels, groups = _labels(entry.get("methods"), where)
        entry_seeds = _count(entry.get("seeds", seeds), f"{where}: seeds")
        entry_extra = [*extra, *_split_flags(entry.get("extra"), f"{where}: extra")]
        reuse = _reuse(entry.get("reuse"), path, where)
        tune = _tune(entry.get("tune"), where)
        for dataset, data_flags in datasets.items():
            cell = Cell(backbone, model, dataset, data_flags, labels, entry_seeds, entry_extra, reuse.get(dataset),
                        tune, groups)
            if cell.name in seen:
                raise PeftnerError(f"{where}: {backbone} on {dataset} ({cell.setting}) is planned twice")
            seen.add(cell.name)
            cells.append(cell)
    unused = {d for d in reuse} - {d for d in datasets}
    if unused:
        raise PeftnerError(f"{where}: reuse names {sorted(unused)[0]!r}, which is not among its datasets")
    return cells


def _tune(tune, where: str) -> dict | None:
    """``tune: {n_trials: N, budget_epochs: E | budget_steps: S}``: search each method on dev first."""
    if tune is None:
        return None
    if not isinstance(tune, dict) or set(tune) - {"n_trials", "budget_epochs", "budget_steps"} or "n_trials" not in tune:
        raise PeftnerError(f"{where}: tune must be a mapping with n_trials and optionally budget_epochs or "
                           "budget_steps")
    if "budget_epochs" in tune and "budget_steps" in tune:
        raise PeftnerError(f"{where}: tune: use either budget_epochs or budget_steps")
    n_trials = _count(tune["n_trials"], f"{where}: tune: n_trials")
    budget = []
    if "budget_epochs" in tune:
        budget = ["--epochs", str(_count(tune["budget_epochs"], f"{where}: tune: budget_epochs"))]
    if "budget_steps" in tune:
        steps = _count(tune["budget_steps"], f"{where}: tune: budget_steps")
        budget = ["--max-steps", str(steps), "--eval-steps", str(max(1, steps // 5))]
    return {"n_trials": n_trials, "budget": budget}


def _reuse(reuse, path: Path, where: str) -> dict[str, Path]:
    """``reuse: {dataset: folder}``: a run matrix (compare's results folder) made with the same flags."""
    if reuse is None:
        return {}
    if not isinstance(reuse, dict) or not all(isinstance(v, str) for v in reuse.values()):
        raise PeftnerError(f"{where}: reuse must map a dataset to a results folder of peftner compare")
    folders = {str(k): (path.parent / v).resolve() for k, v in reuse.items()}
    missing = next((f for f in folders.values() if not (f / "runs").is_dir()), None)
    if missing:
        raise PeftnerError(f"{where}: reuse: {missing} has no runs/ folder (not a peftner compare result)")
    return folders


DATA_FILE_FLAGS = ("--train-file", "--validation-file", "--test-file")


def _datasets(datasets, path: Path, where: str) -> dict[str, list[str]]:
    """``datasets``: ``--dataset`` names, or ``{name: "--train-file A --validation-file B --test-file C"}``
    (relative files are relative to the plan file, like ``model``)."""
    if not isinstance(datasets, list) or not datasets:
        raise PeftnerError(f"{where}: datasets must be a non-empty list of dataset names")
    result = {}
    for item in datasets:
        if isinstance(item, str) and item:
            result[item] = ["--dataset", item]
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), str):
            (name, flags), = item.items()
            words = _split_flags(flags, f"{where}: {name}")
            result[str(name)] = [_from_plan(previous, word, path) for previous, word in zip(["", *words], words)]
        else:
            raise PeftnerError(f"{where}: a dataset is a name or {{name: '--train-file ... --test-file ...'}}, "
                               f"got {item!r}")
    return result


def _from_plan(previous: str, word: str, path: Path) -> str:
    """A data file flag's value (``--train-file A`` or ``--train-file=A``) made relative to the plan file."""
    flag, is_joined, value = word.partition("=")
    if is_joined and flag in DATA_FILE_FLAGS:
        return f"{flag}={_from_plan(flag, value, path)}"
    if previous in DATA_FILE_FLAGS and not Path(word).is_absolute():
        return str((path.parent / word).resolve())
    return word


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PeftnerError(f"{where} must be a whole number of at least 1, got {value!r}")
    return value


def _split_flags(text, where: str) -> list[str]:
    """Recipe flags written as one string (shell quoting), or one line naming where they are malformed."""
    try:
        return shlex.split(str(text or ""))
    except ValueError as err:  # an unbalanced quote
        raise PeftnerError(f"{where}: {err}") from None


def _labels(methods, where: str) -> tuple[dict[str, tuple[str, list[str]]], list[list[str]]]:
    """``methods``: names, or ``{label: "method --flags"}`` mappings; or lists of them, groups that run
    one after another. Returns the labels and the groups (one group when the list is flat)."""
    if not isinstance(methods, list) or not methods:
        raise PeftnerError(f"{where}: methods must be a non-empty list")
    nested = [isinstance(item, list) for item in methods]
    if any(nested) and not all(nested):
        raise PeftnerError(f"{where}: methods is either a list of methods or a list of groups (lists) of methods")
    labels, groups = {}, []
    for group in methods if all(nested) else [methods]:
        if not group:
            raise PeftnerError(f"{where}: a group of methods is empty")
        groups.append([])
        for item in group:
            if isinstance(item, str):
                label, spec = item, item
            elif isinstance(item, dict) and len(item) == 1:
                (label, spec), = item.items()
            else:
                raise PeftnerError(f"{where}: a method is a name or {{label: 'method --flags'}}, got {item!r}")
            words = shlex.split(str(spec))
            if not words or words[0] not in METHODS:
                raise PeftnerError(f"{where}: {label}: unknown method {words[0] if words else ''!r}; choose from "
                                   f"{', '.join(METHODS)}")
            if label in labels:
                raise PeftnerError(f"{where}: method {label!r} listed twice")
            labels[str(label)] = (words[0], words[1:])
            groups[-1].append(str(label))
    return labels, groups


def check_flags(cells: list[Cell]) -> None:
    """Every run's recipe flags parse for its method before anything runs: a typo in the plan is one line
    naming the cell and the label, not a failure of every run."""
    from peftner.config import parse_args
    from peftner.methods import get_method

    for cell in cells:
        for label, (method, flags) in cell.labels.items():
            argv = [*(["--model", cell.model] if cell.model else []), *cell.data_flags, *cell.extra, *flags]
            # the suite trains whole splits, so --max-train-samples is the plan's to set
            clash = next((a for a in argv if a.split("=", 1)[0] in set(MATRIX_FLAGS) - {"--max-train-samples"}), None)
            if clash:
                raise PeftnerError(f"{cell.name} {label}: the plan sets {clash.split('=', 1)[0]}, which the suite "
                                   "sets for every run itself")
            try:
                parse_args(get_method(method), argv)
            except PeftnerError as err:
                raise PeftnerError(f"{cell.name} {label}: {err}") from None


def base_argv(cell: Cell) -> list[str]:
    return [*(["--model", cell.model] if cell.model else []), *cell.data_flags, *cell.extra]


def cell_matrix(cell: Cell, out: Path, launcher: list[str], winners: dict[str, list[str]] | None = None) -> Matrix:
    """The cell's runs; ``winners``: each label's searched flags (a tuned cell)."""
    winners = winners or {}
    return Matrix(out / cell.backbone / cell.folder, list(cell.labels), cell.seeds, [None],
                  {label: [*base_argv(cell), *flags, *winners.get(label, [])]
                   for label, (_, flags) in cell.labels.items()}, launcher,
                  trains={label: method for label, (method, _) in cell.labels.items()}, groups=cell.groups)


def search_cell(cell: Cell, out: Path, workers: shared.Workers, command: str) -> dict[str, list[str]]:
    """A tuned cell: each label's search on dev under the plan's budget (one study per cell and label,
    shared by the workers); returns each label's winning flags. trials_<label>.csv lands in the cell."""
    import tempfile

    from peftner.methods import get_method

    studies = {}
    with tempfile.TemporaryDirectory(prefix="peftner-suite-") as tmp:
        for label, (method, flags) in cell.labels.items():
            studies[label] = search.search(get_method(method), workers, cell.tune["n_trials"],
                                           [*base_argv(cell), *flags, *cell.tune["budget"]], Path(tmp) / label,
                                           command=command, tag=f"suite-{cell.backbone}-{cell.dataset}-{label}")
    winners = {}
    for label, study in studies.items():
        search.wait_for_search(study, workers, cell.tune["n_trials"])
        shared.export_csv(study, out / cell.backbone / cell.folder / f"trials_{label}.csv")
        winners[label] = search.winner_flags(study)
    return winners


def run_suite(cells: list[Cell], out: Path, workers: shared.Workers, launcher: list[str], command: str = "") -> None:
    """This worker's share of every cell, in plan order (each cell a queue all workers take from)."""
    for number, cell in enumerate(cells, start=1):
        print(f"[suite {number}/{len(cells)}] {cell.name}: {len(cell.labels)} methods x {cell.seeds} seeds"
              + (f", each searched first ({cell.tune['n_trials']} trials)" if cell.tune else ""), flush=True)
        winners = search_cell(cell, out, workers, command) if cell.tune else None
        if not cell.tune:
            adopt_runs(cell, out)  # a tuned cell's runs are its own
        run_matrix(cell_matrix(cell, out, launcher, winners), workers, queue=f"suite-{cell.backbone}-{cell.folder}")


# Settings that do not change what a run computes: a reused run may differ in these only.
BOOKKEEPING = {"seed", "output_dir", "run_name", "keep_checkpoints", "checkpoint_every", "threads", "num_workers",
               "report_to", "experiment", "logging_dir", "resume", "config"}


def adopt_runs(cell: Cell, out: Path) -> list[Path]:
    """Copy the ``reuse`` folder's finished runs of this cell (same method and the same settings as
    this cell would train, but the seed and bookkeeping: checked) into the cell, so they are not
    trained again; a run with other settings is left alone and trained anew."""
    import shutil

    from peftner.config import config_to_dict, default_model, parse_args
    from peftner.experiments.matrix import SEED_BASE
    from peftner.methods import get_method
    from peftner.models.facts import inspect_model

    if cell.reuse is None:
        return []
    copied = []
    facts = inspect_model(cell.model or default_model())  # runs record their configs resolved on the model
    for label, (method, flags) in cell.labels.items():
        argv = [*(["--model", cell.model] if cell.model else []), *cell.data_flags, *cell.extra, *flags]
        cfg, method_cfg = parse_args(get_method(method), argv)
        method_cfg = get_method(method).resolve(method_cfg, facts)
        wanted = {k: v for k, v in config_to_dict(cfg).items() if k not in BOOKKEEPING}
        for seed in range(SEED_BASE, SEED_BASE + cell.seeds):
            source = cell.reuse / "runs" / label / "size-all" / f"seed-{seed}" / "metrics.json"
            target = out / cell.backbone / cell.folder / "runs" / label / "size-all" / f"seed-{seed}" / "metrics.json"
            if target.exists() or not source.exists():
                continue
            metrics = RunMetrics.read(source)
            had = {k: v for k, v in (metrics["config"] or {}).items() if k not in BOOKKEEPING}
            same = metrics.method == method and {k: had.get(k) for k in wanted} == wanted and \
                (metrics["method_config"] or {}) == config_to_dict(method_cfg)
            if same:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
                copied.append(target)
            else:
                print(f"    not reused (other settings): {source}", flush=True)
    if copied:
        print(f"    reused {len(copied)} finished runs of {cell.reuse}", flush=True)
    return copied


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
                    notes.setdefault(label, (model_label(metrics.model or ""), model_note(metrics), metrics.machine))
        for summary in summarize(runs):
            model, note, machine = notes[summary.method]
            rows.append(SuiteRow(cell.backbone, cell.dataset, summary, model, note, machine or "unknown",
                                 cell.setting))
    return rows


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
    """Per cell: the best method at ≤ 1 % trainable parameters against full fine-tuning."""
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
                       "met": gap >= -0.5, "seeds": min(best.runs, full.runs)})
    return result


def tables_markdown(rows: list[SuiteRow]) -> str:
    """One table per cell, then the cross-corpus summary and the quality target."""
    lines = []
    for (backbone, dataset, setting), cell_rows in by_cell(rows).items():
        lines += [f"#### {backbone} on {dataset}" + ("" if setting == "defaults" else f", {setting}"), "",
                  "| method | seeds | trainable params | % of total | adapter on disk | test F1 (mean ± std) | "
                  "vs full (F1 points) | train tokens/s | peak memory |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for s in (r.summary for r in cell_rows):
            vs = "reference" if s.method == "full" else "n/a" if s.vs_full_points is None else f"{s.vs_full_points:+.2f}"
            lines.append(f"| {s.method} | {s.runs} | {s.trainable_params:,} | {s.trainable_percent:.3f}% | "
                         f"{format_bytes(s.adapter_bytes)} | {f1_cell(s)} | {vs} | "
                         f"{s.train_tokens_per_second_mean:,.0f} | {s.peak_memory_mb_mean:,.0f} MB |")
        notes = sorted({r.model_note for r in cell_rows if r.model_note})
        lines += ([""] + [f"Backbone: {note}" for note in notes] if notes else []) + [""]
    summary = cross_corpus(rows)
    if summary:
        lines += ["#### Across corpora", "",
                  "| backbone | setting | method | corpora | % trainable | mean rank | mean gap to full (F1 points) |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for s in summary:
            gap = "reference" if s["method"] == "full" else "n/a" if s["mean_gap_to_full"] is None \
                else f"{s['mean_gap_to_full']:+.2f}"
            lines.append(f"| {s['backbone']} | {s['setting']} | {s['method']} | {s['corpora']} | "
                         f"{s['trainable_percent']:.3f}% | {s['mean_rank']:.2f} | {gap} |")
        lines.append("")
    target = quality_target(rows)
    if target:
        lines += ["#### Quality target: the best method at ≤ 1 % trainable within 0.5 F1 points of full", "",
                  "| backbone | corpus | setting | best ≤ 1 % method | its test F1 | full | gap (F1 points) | met | seeds |",
                  "|---|---|---|---|---:|---:|---:|---|---:|"]
        for t in target:
            lines.append(f"| {t['backbone']} | {t['dataset']} | {t['setting']} | {t['best_method']} | "
                         f"{t['best_f1']:.4f} | {t['full_f1']:.4f} | {t['gap_points']:+.2f} | "
                         f"{'yes' if t['met'] else 'no'} | {t['seeds']} |")
        lines.append("")
    return "\n".join(lines)


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
            "rows": [{**r.as_csv(), "test_f1_by_seed": r.summary.test_f1_by_seed} for r in rows],
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


def suite_arguments(parser, results_dir: str = "results/suite"):
    # Whole option names only: the report names the plan's command without a worker's --only (plan_command),
    # which an abbreviation such as --onl would slip past.
    parser.allow_abbrev = False
    parser.add_argument("plan", help="the suite's YAML plan (benchmarks/suite.yaml)")
    parser.add_argument("--results-dir", default=results_dir, help=f"where the runs and the report go (default: {results_dir})")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage shared by the workers (default: study.journal in the results folder)")
    parser.add_argument("--launcher", default=shlex.quote(sys.executable),
                        help="how to start a run (it gets '-m peftner.cli train METHOD ...')")
    parser.add_argument("--only", default=None, help="comma-separated backbone or backbone/dataset cells to run")
    parser.add_argument("--report-only", action="store_true", help="run nothing: rewrite the report from the runs")
    parser.add_argument("--stale-after", type=float, default=shared.STALE_AFTER,
                        help="seconds without a heartbeat after which another host's running run is retried")


def plan_command(command: str) -> str:
    """The command a report names: the whole plan's, whichever cells (``--only``) a worker took."""
    words, kept = shlex.split(command), []
    for previous, word in zip(["", *words], words):
        if word == "--only" or word.startswith("--only=") or word == "--report-only" or previous == "--only":
            continue
        kept.append(word)
    return " ".join(shlex.quote(w) for w in kept)


def suite(args, argv: list[str], prog: str = "peftner suite") -> list[Path]:
    cells = load_plan(Path(args.plan))
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        chosen = [c for c in cells if c.backbone in wanted or c.name in wanted]
        known = {c.backbone for c in cells} | {c.name for c in cells}
        unknown = sorted(wanted - known)
        if unknown:
            raise PeftnerError(f"--only: {unknown[0]!r} is no backbone or backbone/dataset of {args.plan}")
        run_cells = chosen
    else:
        run_cells = cells
    out = Path(args.results_dir)
    command = plan_command(f"{prog} " + " ".join(shlex.quote(a) for a in argv))
    previous = out / "summary.json"
    if args.report_only and previous.exists():  # the report names the command that ran the runs
        command = plan_command(json.loads(previous.read_text(encoding="utf-8")).get("command", command))
    if not args.report_only:
        check_flags(run_cells)
        out.mkdir(parents=True, exist_ok=True)
        storage = shared.open_storage(args.storage or str(out / "study.journal"))
        interrupt_on_sigterm()
        run_suite(run_cells, out, shared.Workers(storage, args.stale_after, shared.ProgressLine()),
                  shlex.split(args.launcher), command)
    written = write_report(cells, out, command)
    print("wrote " + ", ".join(str(p) for p in written), flush=True)
    return written


def suite_command(args) -> int:
    suite(args, sys.argv[2:] if sys.argv[1:2] == ["suite"] else [])
    return 0


__all__ = ["Cell", "load_plan", "run_suite", "suite", "write_report"]
