"""The suite: backbone × corpus × method × seed, each method with its recipe defaults, through the run queue.

Each (backbone, corpus) cell of the plan (:mod:`peftner.experiments.suite_plan`) is one run matrix
under ``RESULTS/<backbone>/<dataset>/`` that every worker sharing the storage splits
(:mod:`peftner.experiments.matrix`): start the same command N times; a restart resumes where it
stopped. A tuned cell searches each method on dev first, then runs its winner. The report
(:mod:`peftner.experiments.suite_report`) is written from whatever runs have finished, so partial
results can be committed and the report regenerated later (``--report-only``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from peftner.errors import PeftnerError, interrupt_on_sigterm
from peftner.experiments import search
from peftner.experiments import storage as shared
from peftner.experiments.matrix import Matrix, run_matrix
from peftner.experiments.suite_plan import Cell, base_argv, check_flags, load_plan
from peftner.experiments.suite_report import write_report
from peftner.report import RunMetrics


def cell_matrix(cell: Cell, out: Path, launcher: list[str], winners: dict[str, list[str]] | None = None,
                stage: int | None = None) -> Matrix:
    """The cell's runs; ``winners``: each label's searched flags (a tuned cell); ``stage``: only the runs
    of the cell's first ``stage`` groups of methods (None: all)."""
    winners = winners or {}
    groups = cell.groups[:stage] if cell.groups and stage else cell.groups
    labels = [label for group in groups for label in group] if groups else list(cell.labels)
    return Matrix(out / cell.backbone / cell.folder, labels, cell.seeds, [None],
                  {label: [*base_argv(cell), *flags, *winners.get(label, [])]
                   for label, (_, flags) in cell.labels.items()}, launcher,
                  trains={label: method for label, (method, _) in cell.labels.items()}, groups=groups)


def search_cell(cell: Cell, out: Path, workers: shared.Workers, command: str) -> dict[str, list[str]]:
    """A tuned cell: each label's search on dev under the plan's budget (one study per cell and label,
    shared by the workers); returns each label's winning flags. trials_<label>.csv lands in the cell."""
    import tempfile

    from peftner.methods import get_method

    studies = {}
    with tempfile.TemporaryDirectory(prefix="peftner-suite-") as tmp:
        for label, (method, flags) in cell.labels.items():
            studies[label] = search.search(get_method(method), workers, cell.tune["n_trials"],
                                           [*base_argv(cell), *flags], Path(tmp) / label, command=command,
                                           tag=f"suite-{cell.backbone}-{cell.dataset}-{label}",
                                           budget=cell.tune["budget"])
    winners = {}
    for label, study in studies.items():
        search.wait_for_search(study, workers, cell.tune["n_trials"])
        shared.export_csv(study, out / cell.backbone / cell.folder / f"trials_{label}.csv")
        winners[label] = search.winner_flags(study)
    return winners


def run_suite(cells: list[Cell], out: Path, workers: shared.Workers, launcher: list[str], command: str = "") -> None:
    """This worker's share of every cell (each cell a queue all workers take from), stage by stage:
    every cell's first group of methods with all its seeds, then every cell's second group, and so on,
    so that a plan cut short by its budget has its first groups on every corpus (plan order within a stage)."""
    winners: dict[str, dict[str, list[str]] | None] = {}
    for stage in range(1, max(cell.stages for cell in cells) + 1):
        for number, cell in enumerate(cells, start=1):
            if stage > cell.stages:
                continue
            if stage == 1:
                print(f"[suite {number}/{len(cells)}] {cell.name}: {len(cell.labels)} methods x {cell.seeds} seeds"
                      + (f", each searched first ({cell.tune['n_trials']} trials)" if cell.tune else ""), flush=True)
                winners[cell.name] = search_cell(cell, out, workers, command) if cell.tune else None
                adopt_runs(cell, out, winners[cell.name])
            else:
                print(f"[suite {number}/{len(cells)}] {cell.name}, group {stage}: "
                      f"{', '.join(cell.groups[stage - 1])} x {cell.seeds} seeds", flush=True)
            run_matrix(cell_matrix(cell, out, launcher, winners[cell.name], stage), workers,
                       queue=f"suite-{cell.backbone}-{cell.folder}")


# What a reused run may differ in: the seed (each seed's run is looked for) and bookkeeping.
NOT_COMPARED = {"seed", "config"}


def adopt_runs(cell: Cell, out: Path, winners: dict[str, list[str]] | None = None) -> list[Path]:
    """Copy finished runs of this cell's settings (method and flags but the seed and bookkeeping:
    checked) from where they already are, so they are not trained again: the plan's ``reuse`` folder,
    and for a tuned cell the untuned cell of its backbone and corpus (a winner that is the defaults is
    the same run). A run with other settings is left alone and trained anew. ``winners``: each label's
    searched flags."""
    import itertools
    import shutil

    from peftner.config import BOOKKEEPING, config_to_dict, default_model, parse_args
    from peftner.experiments.matrix import SEED_BASE
    from peftner.methods import get_method
    from peftner.models.facts import inspect_model

    sources = [cell.reuse] if cell.reuse else []
    if cell.tune and (out / cell.backbone / cell.dataset / "runs").is_dir():
        sources.append(out / cell.backbone / cell.dataset)
    if not sources:
        return []
    copied = []
    facts = inspect_model(cell.model or default_model())  # runs record their configs resolved on the model
    for label, (method, flags) in cell.labels.items():
        trains = get_method(method)
        cfg, method_cfg = parse_args(trains, [*base_argv(cell), *flags, *(winners or {}).get(label, [])])
        wanted = {k: v for k, v in config_to_dict(cfg).items() if k not in BOOKKEEPING | NOT_COMPARED}
        wanted_method = config_to_dict(trains.resolve(method_cfg, facts))
        default_cfg, default_method_cfg = map(config_to_dict, parse_args(trains, []))
        for seed, folder in itertools.product(range(SEED_BASE, SEED_BASE + cell.seeds), sources):
            source = folder / "runs" / label / "size-all" / f"seed-{seed}" / "metrics.json"
            target = out / cell.backbone / cell.folder / "runs" / label / "size-all" / f"seed-{seed}" / "metrics.json"
            if target.exists() or not source.exists():
                continue
            metrics = RunMetrics.read(source)
            same = metrics.method == method and _same_settings(metrics["config"] or {}, wanted, default_cfg) and \
                _same_settings(metrics["method_config"] or {}, wanted_method, default_method_cfg)
            if same:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
                copied.append(target)
            else:
                print(f"    not reused (other settings): {source}", flush=True)
    if copied:
        print(f"    reused {len(copied)} finished runs of {', '.join(map(str, sources))}", flush=True)
    return copied


def _same_settings(had: dict, wanted: dict, defaults: dict) -> bool:
    """A finished run's recorded settings ``had`` are ``wanted``. A setting the run predates counts as
    its default: an option is added with the behaviour from before it as its default."""
    return all(had.get(key, defaults.get(key)) == value for key, value in wanted.items())


def suite_arguments(parser, results_dir: str = "results/suite"):
    parser.add_argument("plan", help="the suite's YAML plan (benchmarks/suite.yaml)")
    parser.add_argument("--results-dir", default=results_dir,
                        help=f"where the runs and the report go (default: {results_dir})")
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


__all__ = ["adopt_runs", "run_suite", "suite"]
