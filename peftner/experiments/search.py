"""``peftner tune METHOD``: a per-method hyperparameter search on the dev split, then the winner on test.

1. **Search** (Optuna, TPE sampler): each trial trains the method with flags drawn from the method's
   search space (learning rate on a log scale plus its main structural knob) under one fixed budget
   (the same epochs or ``--max-steps`` for every trial) and scores the dev split after each epoch;
   Optuna's median pruner stops a trial whose dev F1 trails the median of earlier trials at the same
   step. The test split is never read during the search. The recipe's defaults are the first trial,
   so the search can only match or beat them.
2. **Winner**: the best trial's flags are trained with ``--seeds`` seeds (42, 43, ...) through the
   recipe, like any comparison run, and scored on test once; the runs land in
   ``RESULTS/runs/<method>/size-all/seed-N/metrics.json``.

Workers on one or many machines share the study through ``--storage`` (:mod:`peftner.sweep`): start
the same command N times. Everything resumes: finished trials and runs are kept in the storage and
on disk, interrupted ones are retried.
"""

from __future__ import annotations

import contextlib
import gc
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from peftner import sweep
from peftner.errors import PeftnerError
from peftner.space import Bundle, Choice, LogUniform
from peftner.training.callbacks import Callback

DEFAULT_TRIALS = 20


def search_space(method) -> dict:
    """The method's search space, declared in its file (``Method.search_space``)."""
    space = method.search_space
    if not space:
        raise PeftnerError(f"method {method.name!r} has no search space")
    return space


def space_fields(method_name: str) -> list[str]:
    """Config fields a method's search varies (learning rate first); tables print these."""
    from peftner.methods import METHODS

    method = METHODS.get(method_name)
    space = method.search_space if method else {}
    names = ["learning_rate"]
    for name, spec in space.items():
        names += list(spec.flags[0][1]) if isinstance(spec, Bundle) else [name]
    return list(dict.fromkeys(names))


def flags_of(values: dict, space: dict) -> list[str]:
    """Recipe flags for a trial's parameter values (bundles expanded into their fields)."""
    fields = {}
    for name, value in values.items():
        spec = space.get(name)
        fields.update(spec.expand(value) if isinstance(spec, Bundle) else {name: value})
    argv = []
    for name, value in fields.items():
        if value is None:  # unset: the method's default (e.g. the architecture's target modules)
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += [f"--{name.replace('_', '-')}", f"{value:.6g}" if isinstance(value, float) else str(value)]
    return argv


def default_values(method, space: dict) -> dict | None:
    """The recipe defaults as a point of the space (the first trial), when the space contains them."""
    from peftner.config import config_to_dict, parse_args

    cfg, method_cfg = parse_args(method, [])
    current = {**config_to_dict(cfg), **config_to_dict(method_cfg)}
    point = {}
    for name, spec in space.items():
        if isinstance(spec, Bundle):
            match = [o for o, fields in spec.flags if all(_same(current.get(k), v) for k, v in fields.items())]
            if not match:
                return None
            point[name] = match[0]
        elif isinstance(spec, Choice):
            if not any(_same(current.get(name), o) for o in spec.options):
                return None
            point[name] = next(o for o in spec.options if _same(current.get(name), o))
        else:
            value = current.get(name)
            if value is None or not spec.low <= value <= spec.high:
                return None
            point[name] = value
    return point


def _same(current, option) -> bool:
    if isinstance(current, list):
        return ",".join(map(str, current)) == (option if isinstance(option, str) else ",".join(map(str, option)))
    return current == option


def make_pruner(startup_trials: int = 4):
    """Median pruning on per-evaluation dev F1, after a few complete trials and never at the first
    evaluation (every method is near 0 after one epoch)."""
    optuna = sweep._optuna()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=2)


def study_name(method: str, tag: str | None = None) -> str:
    return f"tune-{method}" + (f"-{tag}" if tag else "")


def _objective_flags(trial, space: dict) -> dict:
    return {name: spec.suggest(trial, name) for name, spec in space.items()}


class Pruning(Callback):
    """The loop hook of a trial: reports each dev evaluation to Optuna, stamps the heartbeat, and
    stops a trial the pruner gives up on. Reported by evaluation number: every trial of a study
    evaluates at the same steps."""

    def __init__(self, trial, on_progress=None):
        self.trial, self.on_progress, self.evaluations = trial, on_progress, 0

    def on_evaluate(self, entry: dict):
        self.evaluations += 1
        self.trial.report(entry["dev_f1"], self.evaluations)
        sweep.stamp(self.trial)
        if self.on_progress:
            self.on_progress(self.trial.number, entry)
        if self.trial.should_prune():
            raise sweep._optuna().TrialPruned(f"dev F1 {entry['dev_f1']:.4f} at evaluation {self.evaluations} "
                                              f"(step {entry['step']})")


def run_trial(method, trial, space: dict, base_argv: list[str], log_dir: Path, on_progress=None) -> float:
    """Train one trial in this process (dev only) and return its best dev F1; raises TrialPruned."""
    from peftner.config import parse_args
    from peftner.recipe import run

    values = _objective_flags(trial, space)
    flags = flags_of(values, space)
    trial.set_user_attr("flags", " ".join(flags))
    sweep.stamp(trial)
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg, method_cfg = parse_args(method, [*base_argv, *flags, "--output-dir", str(log_dir), "--keep-checkpoints", "0"])

    with open(log_dir / "log.txt", "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        result = run(method, cfg, method_cfg, command="peftner tune", callbacks=[Pruning(trial, on_progress)],
                     evaluate_test=False)
    trial.set_user_attr("trainable_params", result["trainable_params"])
    trial.set_user_attr("train_seconds", round(result["train_seconds"], 1))
    return result["best_dev_f1"]


def best_trial(study):
    optuna = sweep._optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def search(method, storage, name: str, n_trials: int, base_argv: list[str], work_dir: Path,
           progress: sweep.ProgressLine | None = None, stale_after: float = sweep.STALE_AFTER, seed: int = 0,
           status=None, command: str | None = None):
    """This worker's share of the search: trials until the study holds ``n_trials`` finished ones.
    ``status()`` is the progress line's text (default: this study's); ``command`` is recorded at once, so
    a sweep stopped early still names the command that resumes it."""
    optuna = sweep._optuna()
    state = optuna.trial.TrialState
    space = search_space(method)
    # Each worker seeds its sampler differently, so parallel workers do not propose the same point.
    sampler = optuna.samplers.TPESampler(seed=seed + sweep.os.getpid(), n_startup_trials=5)
    study = sweep.load_study(storage, name, sampler=sampler, pruner=make_pruner())
    study.set_user_attr("method", method.name)
    study.set_user_attr("budget_flags", " ".join(base_argv))
    if command:
        study.set_user_attr("command", command)  # the shared table names every method's own command
    sweep.reap_stale(study, storage, stale_after)
    if not study.get_trials(deepcopy=False):
        defaults = default_values(method, space)
        if defaults:
            study.enqueue_trial(defaults, user_attrs={"recipe_defaults": True}, skip_if_exists=True)

    def show(current: str = ""):
        if progress:
            progress.show((status() if status else search_status(study, n_trials, space)) + current)

    while True:
        sweep.reap_stale(study, storage, stale_after)
        c = sweep.counts(study)
        if c["done"] + c["running"] >= n_trials and not c["waiting"]:
            break
        trial = study.ask()
        if _surplus(study, trial.number, n_trials):  # another worker took the last slot at the same moment
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=state.FAIL)
            continue
        show(f" | trial {trial.number} starting")
        try:
            value = run_trial(method, trial, space, base_argv, work_dir / f"trial-{trial.number}",
                              on_progress=lambda n, e: show(f" | trial {n} step {e['step']} dev {e['dev_f1']:.4f}"))
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned_at", str(pruned))
            study.tell(trial, state=state.PRUNED)
        except Exception as err:  # noqa: BLE001 - a point of the space that fails: record it, go on
            trial.set_user_attr("error", str(err) if isinstance(err, PeftnerError) else f"{type(err).__name__}: {err}")
            study.tell(trial, state=state.FAIL)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): retried by the next worker that starts
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=state.FAIL)
            study.enqueue_trial(dict(trial.params))
            raise
        else:
            study.tell(trial, value)
        gc.collect()  # the trial's model and data, before the next one loads
        show()
    return study


def _surplus(study, number: int, n_trials: int) -> bool:
    """Whether trial ``number`` would exceed ``n_trials``: finished trials plus the running ones
    started before it (lower numbers) already fill the study. Exactly one of two racing workers loses."""
    state = sweep._optuna().trial.TrialState
    ahead = [t for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)) if t.number < number]
    return sweep.counts(study)["done"] + len(ahead) >= n_trials


def search_status(study, n_trials: int, space: dict) -> str:
    c = sweep.counts(study)
    left = max(0, n_trials - c["done"] - c["running"])
    best = best_trial(study)
    text = (f"[{study.study_name}] {c['done']}/{n_trials} trials: {c['complete']} complete, {c['pruned']} pruned, "
            f"{c['failed']} failed, {c['running']} running, {left} left")
    if best:
        text += f" | best dev F1 {best.value:.4f} (trial {best.number}: {describe_params(best.params)})"
    return text


def sweep_status(storage, methods, n_trials: int) -> str:
    """One line for a whole sweep of several methods: trials over all studies, best dev F1 of each."""
    optuna = sweep._optuna()
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    total = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "done": 0}
    bests = []
    for method in methods:
        if study_name(method) not in existing:
            continue
        study = sweep.read_study(storage, study_name(method))
        c = sweep.counts(study)
        for key in total:
            total[key] += c[key]
        best = best_trial(study)
        if best:
            bests.append(f"{method} {best.value:.4f}")
    target = n_trials * len(methods)
    left = max(0, target - total["done"] - total["running"])
    return (f"[sweep of {len(methods)} methods] {total['done']}/{target} trials: {total['complete']} complete, "
            f"{total['pruned']} pruned, {total['failed']} failed, {total['running']} running, {left} left"
            + (f" | best dev F1: {', '.join(bests)}" if bests else ""))


def describe_params(params: dict) -> str:
    return ", ".join(f"{k.replace('learning_rate', 'lr')} {v:.2g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in params.items())


def winner_flags(study) -> list[str]:
    best = best_trial(study)
    if best is None:
        raise PeftnerError(f"study {study.study_name} has no complete trial yet")
    return shlex.split(best.user_attrs["flags"])


# ---- command line -------------------------------------------------------------------------------

def default_storage(out: Path) -> str:
    return str(out / "study.journal")


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


def add_sweep_arguments(parser, with_results_dir: bool = True):
    parser.add_argument("--storage", default=None,
                        help="Optuna storage shared by all workers: sqlite:///FILE.db, an RDB URL, or a journal "
                             "file path (default: study.journal in the results folder)")
    parser.add_argument("--n-trials", type=int, default=None,
                        help=f"finished trials per method the study should hold, over all workers (default: "
                             f"{DEFAULT_TRIALS}; with --status, what the study's command asked for)")
    parser.add_argument("--budget-epochs", type=int, default=None,
                        help="epochs per trial (default: the recipe's epochs; the same for every trial)")
    parser.add_argument("--budget-steps", type=int, default=None,
                        help="optimizer steps per trial instead of epochs")
    parser.add_argument("--stale-after", type=float, default=sweep.STALE_AFTER,
                        help="seconds without a heartbeat after which another host's running trial is retried")
    if with_results_dir:
        parser.add_argument("--results-dir", default=None,
                            help="default: benchmarks/results/<dataset>_tuned (wnut16_tuned on the embedded data)")


def recorded_trials(study) -> int:
    """The ``--n-trials`` of the command that ran the study (recorded when its search starts), else the
    default: ``--status`` on a finished study must not report trials "left" that nobody asked for."""
    found = re.search(r"--n-trials[ =](\d+)", study.user_attrs.get("command", ""))
    return int(found.group(1)) if found else DEFAULT_TRIALS


SWEEP_MINIMUMS = {"n_trials": 1, "budget_epochs": 1, "budget_steps": 1, "stale_after": 1}


def check_sweep_arguments(args) -> None:
    from peftner.validation import check_at_least

    check_at_least(args, SWEEP_MINIMUMS)
    if args.budget_epochs and args.budget_steps:
        raise PeftnerError("use either --budget-epochs or --budget-steps")


def budget_argv(args) -> list[str]:
    argv = []
    if args.budget_epochs:
        argv += ["--epochs", str(args.budget_epochs)]
    if args.budget_steps:
        argv += ["--max-steps", str(args.budget_steps), "--eval-steps", str(max(1, args.budget_steps // 5))]
    return argv


def results_dir(args, extra: list[str]) -> Path:
    """``--results-dir``, else benchmarks/results/<dataset>_tuned (``files_tuned`` for own files)."""
    if args.results_dir:
        return Path(args.results_dir)
    dataset = "files" if "--train-file" in extra else \
        next((extra[i + 1] for i, a in enumerate(extra[:-1]) if a == "--dataset"), "wnut16").replace("/", "_")
    return Path(__file__).resolve().parent.parent / "benchmarks" / "results" / f"{dataset}_tuned"


def tune_command(args) -> int:
    from peftner.benchmark import finish, run_matrix
    from peftner.methods import get_method
    from peftner.validation import check_at_least

    sweep.interrupt_on_sigterm()
    check_sweep_arguments(args)
    check_at_least(args, {"seeds": 0})
    method = get_method(args.method)
    search_space(method)  # a method without a space fails before any storage is touched
    extra = shlex.split(args.extra)
    out = results_dir(args, extra)
    out.mkdir(parents=True, exist_ok=True)
    storage = sweep.open_storage(args.storage or default_storage(out))
    progress = sweep.ProgressLine()
    base = [*extra, *budget_argv(args)]
    if args.status:
        study = sweep.read_study(storage, study_name(method.name))
        sweep.export_csv(study, out / f"trials_{method.name}.csv")
        print(search_status(study, args.n_trials or recorded_trials(study), search_space(method)))
        return 0
    n_trials = args.n_trials or DEFAULT_TRIALS
    command = "peftner tune " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["tune"] else \
        f"peftner tune {method.name}"
    with tempfile.TemporaryDirectory(prefix="peftner-tune-") as tmp:
        study = search(method, storage, study_name(method.name), n_trials, base, Path(tmp), progress,
                       args.stale_after, command=command)
    wait_for_search(study, storage, args.stale_after, progress, n_trials)
    sweep.export_csv(study, out / f"trials_{method.name}.csv")
    flags = winner_flags(study)
    progress.show(search_status(study, n_trials, search_space(method)), force=True)
    progress.close()

    def matrix():
        if not args.seeds:
            return []
        return run_matrix(storage, out, [method.name], args.seeds, [None], {method.name: [*base, *flags]},
                          progress=progress, stale_after=args.stale_after, queue=f"runs-{method.name}")

    def report(rows):
        best = best_trial(study)
        line = f"best trial {best.number} of {study.study_name}: dev F1 {best.value:.4f} with {' '.join(flags)}"
        if rows:
            mine = [r["test_f1"] for r in rows]
            line += (f"; test F1 over {len(mine)} seeds {statistics.fmean(mine):.4f}"
                     + (f" ± {statistics.stdev(mine):.4f}" if len(mine) > 1 else "")
                     + f" | wrote {write_tuned_report(storage, out, command)}")
        print(line, flush=True)

    finish(storage, f"{out.name}-{method.name}-seeds{args.seeds}", matrix, report, args.seeds)
    return 0


def sweep_summaries(storage, out: Path, methods) -> dict[str, dict]:
    """Per tuned method: trial counts, best dev F1 and flags, its budget; exports trials_<method>.csv."""
    optuna = sweep._optuna()
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)} if storage is not None else set()
    result = {}
    for method in methods:
        if study_name(method) not in names:
            continue
        study = sweep.read_study(storage, study_name(method))
        best = best_trial(study)
        c = sweep.counts(study)
        result[method] = {**c, "best_dev_f1": best.value if best else None,
                          "best_trial": best.number if best else None,
                          "best_flags": best.user_attrs.get("flags") if best else None,
                          "budget_flags": study.user_attrs.get("budget_flags", ""),
                          "command": study.user_attrs.get("command", f"peftner tune {method}"),
                          "trials_csv": sweep.export_csv(study, out / f"trials_{method}.csv").name}
    return result


def write_tuned_report(storage, out: Path, command: str) -> Path:
    """The tuned table of every method with runs in ``out`` (several ``peftner tune`` calls add up)."""
    from peftner.benchmark import RunSpec, row_of, summarize, write_outputs
    from peftner.methods import METHODS
    from peftner.report import RunMetrics, library_versions, machine_description

    rows = []
    for path in sorted((out / "runs").glob("*/size-all/seed-*/metrics.json")):
        metrics = RunMetrics.read(path)
        rows.append(row_of(RunSpec(metrics.method, int(metrics.seed), None), metrics))
    summary = summarize(rows)
    # Every study in the storage, also one stopped before its winner's runs: the table shows how far it got.
    studied = sorted(s.study_name.removeprefix("tune-") for s in sweep._optuna().get_all_study_summaries(storage))
    methods = dict.fromkeys([*(s["method"] for s in summary), *(m for m in studied if m in METHODS)])
    sweeps = sweep_summaries(storage, out, list(methods))
    # One `peftner tune` call per method adds its rows: name each method's command, not only the last.
    commands = list(dict.fromkeys(s["command"] for s in sweeps.values())) or [command]
    info = {"command": "; ".join(commands), "machine": machine_description(), "versions": library_versions(),
            "methods": [s["method"] for s in summary], "tuned": True}
    write_outputs(out, rows, summary, info, sweeps)
    return out / "table.md"


def wait_for_search(study, storage, stale_after: float, progress, n_trials: int, poll: float = 10.0):
    """Wait until no other worker's trial is running (the winner is only known then)."""
    optuna = sweep._optuna()
    while True:
        sweep.reap_stale(study, storage, stale_after)
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,
                                                        optuna.trial.TrialState.WAITING)):
            return
        if progress:
            progress.show(search_status(study, n_trials, {}) + " | waiting for other workers")
        time.sleep(poll)


__all__ = ["Bundle", "Choice", "LogUniform", "flags_of", "search", "search_space", "tune_command"]
