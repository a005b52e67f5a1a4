"""``peftner tune METHOD``: the method's search on dev (:mod:`peftner.experiments.search`), then the
winner × ``--seeds`` seeds on test through the run matrix, and the tuned table.

The winner's runs land in ``RESULTS/runs/<method>/size-all/seed-N/metrics.json``; ``RESULTS`` is
``--results-dir``, by default ``results/<dataset>_tuned`` in the working directory. Everything
resumes: finished trials and runs are kept in the storage and on disk, interrupted ones are retried.
"""

from __future__ import annotations

import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from peftner.errors import interrupt_on_sigterm
from peftner.experiments import storage as shared
from peftner.experiments.matrix import Matrix, extra_flags, finish, run_matrix
from peftner.experiments.outputs import write_outputs
from peftner.experiments.results import row_of, summarize
from peftner.experiments.search import (DEFAULT_TRIALS, add_sweep_arguments, best_trial, budget_of,
                                        check_sweep_arguments, default_storage, recorded_trials, search,
                                        search_space, search_status, searched_flags, study_name, sweep_summaries,
                                        wait_for_search, winner_flags)
from peftner.methods import METHODS, get_method
from peftner.report import RunMetrics, library_versions, machine_description
from peftner.validation import check_at_least


def tune_arguments(parser):
    from peftner.methods import METHODS

    parser.add_argument("method", choices=sorted(METHODS), help="method to tune")
    add_sweep_arguments(parser)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for the winner's test runs (0: search only)")
    parser.add_argument("--status", action="store_true",
                        help="run nothing: print the study's progress line and export trials_<method>.csv "
                             "(for committing a sweep that is still running)")
    parser.add_argument("--extra", default="", help="more recipe flags for every trial and run (data, model, "
                                                    "...), quoted: --extra '--model DIR --batch-size 8'")


def results_dir(args, extra: list[str]) -> Path:
    """``--results-dir``, else results/<dataset>_tuned in the working directory (``files_tuned`` for own files)."""
    if args.results_dir:
        return Path(args.results_dir)
    dataset = "files" if "--train-file" in extra else \
        next((extra[i + 1] for i, a in enumerate(extra[:-1]) if a == "--dataset"), "wnut16").replace("/", "_")
    return Path("results") / f"{dataset}_tuned"


def tune_command(args) -> int:
    interrupt_on_sigterm()
    check_sweep_arguments(args)
    check_at_least(args, {"seeds": 0})
    method = get_method(args.method)
    space = search_space(method)  # a method without a space fails before any storage is touched
    budget = budget_of(args)
    # Checked once, before any trial: a typo would otherwise fail every trial of the search.
    extra = extra_flags(args.extra, [method.name], reserved=[*searched_flags(space), *budget.trial_flags()[::2]])
    out = results_dir(args, extra)
    out.mkdir(parents=True, exist_ok=True)
    storage = shared.open_storage(args.storage or default_storage(out), repair=not args.status)
    progress = shared.ProgressLine()
    workers = shared.Workers(storage, args.stale_after, progress)
    base = extra  # the runs the winner trains; each trial trains the first part (budget) of one
    if args.status:
        study = shared.read_study(storage, study_name(method.name))
        shared.export_csv(study, out / f"trials_{method.name}.csv")
        print(search_status(study, args.n_trials or recorded_trials(study), search_space(method)))
        return 0
    n_trials = args.n_trials or DEFAULT_TRIALS
    command = "peftner tune " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["tune"] else \
        f"peftner tune {method.name}"
    with tempfile.TemporaryDirectory(prefix="peftner-tune-") as tmp:
        study = search(method, workers, n_trials, base, Path(tmp), command=command, budget=budget)
    wait_for_search(study, workers, n_trials)
    shared.export_csv(study, out / f"trials_{method.name}.csv")
    flags = winner_flags(study)
    progress.show(search_status(study, n_trials, search_space(method)), force=True)
    progress.close()

    def matrix():
        if not args.seeds:
            return []
        plan = Matrix(out, [method.name], args.seeds, [None], {method.name: [*base, *flags]})
        return run_matrix(plan, workers, queue=f"runs-{method.name}")

    def report(rows):
        best = best_trial(study)
        line = f"best trial {best.number} of {study.study_name}: dev F1 {best.value:.4f} with {' '.join(flags)}"
        if rows:
            mine = [r.test_f1 for r in rows]
            line += (f"; test F1 over {len(mine)} seeds {statistics.fmean(mine):.4f}"
                     + (f" ± {statistics.stdev(mine):.4f}" if len(mine) > 1 else "")
                     + f" | wrote {write_tuned_report(storage, out, command)}")
        print(line, flush=True)

    finish(storage, f"{out.name}-{method.name}-seeds{args.seeds}", matrix, report, args.seeds)
    return 0


def write_tuned_report(storage, out: Path, command: str) -> Path:
    """The tuned table of every method with runs in ``out`` (several ``peftner tune`` calls add up)."""
    rows = []
    for path in sorted((out / "runs").glob("*/size-all/seed-*/metrics.json")):
        metrics = RunMetrics.read(path)
        rows.append(row_of(metrics.method, int(metrics.seed), None, metrics))
    summary = summarize(rows)
    # Every study in the storage, also one stopped before its winner's runs: the table shows how far it got.
    studied = sorted(s.study_name.removeprefix("tune-") for s in shared._optuna().get_all_study_summaries(storage))
    methods = dict.fromkeys([*(s.method for s in summary), *(m for m in studied if m in METHODS)])
    sweeps = sweep_summaries(storage, out, list(methods))
    # One `peftner tune` call per method adds its rows: name each method's command, not only the last.
    commands = list(dict.fromkeys(s["command"] for s in sweeps.values())) or [command]
    info = {"command": "; ".join(commands), "machine": machine_description(), "versions": library_versions(),
            "methods": [s.method for s in summary], "tuned": True}
    write_outputs(out, rows, summary, info, sweeps)
    return out / "table.md"
