"""``peftner compare`` (and ``benchmarks/compare.py``): the methods × seeds matrix, optionally tuned
first, then its table and plots.

Results go to ``--results-dir`` (default: ``results/`` in the working directory) under a name derived
from the options, so two different comparisons never share a folder.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from peftner.errors import OneLineParser, PeftnerError, interrupt_on_sigterm
from peftner.methods import METHODS, get_method
from peftner.experiments import search
from peftner.experiments import storage as shared
from peftner.experiments.matrix import SEED_BASE, Matrix, extra_flags, finish, parse_train_sizes, plan_runs, run_matrix
from peftner.experiments.outputs import write_outputs
from peftner.experiments.results import RunRow, summarize
from peftner.experiments.tables import print_rich_table


# The comparison's default order: cheap reference points first, then the PEFT methods.
DEFAULT_METHODS = tuple(name for name, method in METHODS.items() if method.compared)


DESCRIPTION = ("Run methods x seeds (x training-set sizes) through the recipes; write runs.csv, summary.json, "
               "table.md and plots to RESULTS_DIR/<name>/.")


def build_parser(results_dir: str = "results") -> argparse.ArgumentParser:
    parser = OneLineParser(prog="peftner compare", description=DESCRIPTION)
    compare_arguments(parser, results_dir)
    return parser


def compare_arguments(parser, results_dir: str = "results"):
    """``peftner compare``'s flags, also those of benchmarks/compare.py (whose results go to the repository)."""
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated methods")
    parser.add_argument("--seeds", type=int, default=3, help=f"number of seeds ({SEED_BASE}, {SEED_BASE + 1}, ...)")
    parser.add_argument("--train-sizes", default=None, help="e.g. 100,300,1000,all: nested training subsets")
    parser.add_argument("--name", default=None, help="results folder name (default: derived from the options)")
    parser.add_argument("--results-dir", default=results_dir,
                        help=f"where the comparison's folder goes (default: {results_dir})")
    parser.add_argument("--launcher", default=f"{shlex.quote(sys.executable)}",
                        help="how to start a run (it gets '-m peftner.cli train METHOD ...'), e.g. "
                             "'accelerate launch --num_processes 2'")
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
    search.add_sweep_arguments(parser, with_results_dir=False)
    parser.add_argument("--report-to", default="none",
                        help="experiment trackers for every run (as the recipes' --report-to); all runs go under "
                             "one experiment, each named METHOD_size-N_seed-S")
    parser.add_argument("--experiment", default=None, help="tracker experiment (default: peftner-compare-NAME)")


def main(argv=None, results_dir: str = "results", prog: str = "peftner compare") -> dict:
    argv = sys.argv[1:] if argv is None else argv
    return compare(build_parser(results_dir).parse_args(argv), argv, prog)


def compare(args, argv: list[str], prog: str = "peftner compare") -> dict:
    """The matrix of ``args``; ``prog`` and ``argv`` (its flags as typed) are recorded as the results' command."""
    from peftner.report import library_versions, machine_description
    from peftner.trackers import parse_report_to
    from peftner.validation import check_at_least

    search.check_sweep_arguments(args)
    check_at_least(args, {"seeds": 1, "epochs": 1, "steps": 1, "max_train_samples": 1})
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        get_method(method)  # an unknown name fails before any run starts
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
    searched = [f for m in methods for f in search.searched_flags(search.search_space(get_method(m)))] \
        if args.tune else []
    # Checked for every method before any run: a typo would otherwise fail every run of the matrix.
    recipe_args += extra_flags(args.extra, methods, reserved=[*recipe_args[::2], *searched], given=recipe_args)
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
        storage = shared.open_storage(args.storage or str(out / "study.journal"))
        interrupt_on_sigterm()
    per_method = {m: list(recipe_args) for m in methods}
    progress = None
    if args.tune:  # the trials log to no tracker: only the matrix's runs do
        per_method, progress = tune_methods(args, storage, out, methods, recipe_args)
    if parse_report_to(args.report_to):  # one experiment for the matrix, logs next to its results
        tracking = ["--report-to", args.report_to, "--experiment", args.experiment or f"peftner-compare-{name}",
                    "--logging-dir", str(out / "logs")]
        per_method = {m: [*flags, *tracking] for m, flags in per_method.items()}
    info = {"command": f"{prog} " + " ".join(shlex.quote(a) for a in argv),
            "machine": machine_description(), "versions": library_versions(), "methods": methods,
            "seeds": args.seeds, "train_sizes": [s or "all" for s in sizes], "tuned": bool(args.tune)}
    result = {"summary": None, "rows": [], "out": out}

    plan = Matrix(out, methods, args.seeds, sizes, per_method, shlex.split(args.launcher))
    workers = shared.Workers(storage, args.stale_after, progress) if storage is not None else None

    def matrix() -> list[RunRow]:
        return run_matrix(plan, workers)

    def report(rows: list[RunRow]):
        summary = summarize(rows)
        sweeps = None
        if args.tune:
            sweeps = search.sweep_summaries(storage, out, methods)
        written = write_outputs(out, rows, summary, info, sweeps)
        print_rich_table(summary)
        print("wrote " + ", ".join(str(p) for p in written))
        result.update(summary=summary, rows=rows)

    finish(storage, out.name, matrix, report, len(plan_runs(methods, args.seeds, sizes)))
    if progress:
        progress.close()
    return result


def tune_methods(args, storage, out: Path, methods, recipe_args: list[str]):
    """``--tune``: each method's search (shared by all workers), then its winner's flags per method."""

    progress = shared.ProgressLine()
    workers = shared.Workers(storage, args.stale_after, progress)
    budget = search.budget_of(args)
    n_trials = args.n_trials or search.DEFAULT_TRIALS
    studies = {}
    with tempfile.TemporaryDirectory(prefix="peftner-tune-") as tmp:
        for name in methods:
            studies[name] = search.search(get_method(name), workers, n_trials, recipe_args, Path(tmp) / name,
                                          status=lambda: search.sweep_status(storage, methods, n_trials), budget=budget)
    per_method = {}
    for name, study in studies.items():
        search.wait_for_search(study, workers, n_trials)
        shared.export_csv(study, out / f"trials_{name}.csv")
        per_method[name] = [*recipe_args, *search.winner_flags(study)]
    return per_method, progress


def cli(argv=None, results_dir: str = "results", prog: str = "peftner compare"):
    from peftner.errors import INTERRUPTED_STATUS, interrupted_line

    interrupt_on_sigterm()
    try:
        main(argv, results_dir, prog)
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:
        print(interrupted_line(err), file=sys.stderr)
        raise SystemExit(INTERRUPTED_STATUS) from None


def compare_command(args) -> int:
    compare(args, sys.argv[2:] if sys.argv[1:2] == ["compare"] else [])
    return 0
