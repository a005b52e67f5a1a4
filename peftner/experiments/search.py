"""The hyperparameter search behind ``peftner tune`` and ``peftner compare --tune``.

Optuna's TPE sampler draws each trial's flags from the method's search space (learning rate on a log
scale plus its main structural knob; declared in the method's file). A trial is the beginning of the
run it stands for: that run's own schedule, stopped after the budget (:class:`Budget`: the first
``--budget-epochs`` epochs or ``--budget-steps`` optimizer steps; by default the whole run). It trains
in this process and scores the dev split after each evaluation, and Optuna's median pruner stops a
trial whose dev F1 trails the median of earlier trials at the same step. The test split is never
read during the search. The recipe's defaults are the first trial, so the search can only match or
beat them. Workers on one or many machines share the study through ``--storage``
(:mod:`peftner.experiments.storage`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from peftner.config import config_to_dict, parse_args
from peftner.errors import DataError, PeftnerError, stop_if_signalled
from peftner.experiments import storage as shared
from peftner.methods.space import Bundle, Choice
from peftner.recipe import run
from peftner.training.callbacks import Callback
from peftner.validation import check_at_least


DEFAULT_TRIALS = 20
# A worker stops after this many failed trials in a row: failed trials do not count toward --n-trials,
# so a set-up that fails every trial (a model that does not load, memory) must end the search instead.
FAILURES_IN_A_ROW = 3


def search_space(method) -> dict:
    """The method's search space, declared in its file (``Method.search_space``)."""
    space = method.search_space
    if not space:
        raise PeftnerError(f"method {method.name!r} has no search space")
    return space


def describe_space(space: dict) -> dict[str, str]:
    """The space as a study records it, to tell a study of another space (a registry changed since)."""
    return {name: repr(spec) for name, spec in space.items()}


def space_changes(recorded: dict, current: dict) -> str:
    """``name: old -> new`` for each entry of a search space that differs (``none``: absent)."""
    recorded = recorded if isinstance(recorded, dict) else {"space": str(recorded)}  # not a record of ours
    return "; ".join(f"{name}: {recorded.get(name, 'none')} -> {current.get(name, 'none')}"
                     for name in dict.fromkeys([*recorded, *current]) if recorded.get(name) != current.get(name))


def searched_flags(space: dict) -> list[str]:
    """The recipe flags a trial sets from its point of the space (``--learning-rate``, ...)."""
    from peftner.methods.space import searched_fields

    return ["--" + name.replace("_", "-") for name in searched_fields(space)]


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


@dataclass(frozen=True)
class Budget:
    """How much of its run a trial trains: the first ``epochs`` epochs or ``steps`` optimizer steps (None:
    all of it), on the run's own learning-rate schedule, so that a trial's dev scores are those its run
    reaches at that point. A shorter run instead (``--epochs 2``) warms up and decays faster than the run
    the winner trains: on WNUT-16 the LoRA defaults scored dev F1 0 after such 2 epochs, and 0.49 after
    the first 2 of their 5."""

    epochs: int | None = None
    steps: int | None = None

    def trial_flags(self) -> list[str]:
        """Recipe flags a trial adds: a step budget scores dev five times on the way, for the pruner."""
        return ["--eval-steps", str(max(1, self.steps // 5))] if self.steps else []

    def sweep_flags(self) -> list[str]:
        """The budget as the sweep commands spell it (recorded with a study, shown in tables)."""
        return (["--budget-epochs", str(self.epochs)] if self.epochs else []) + \
            (["--budget-steps", str(self.steps)] if self.steps else [])

    def stopper(self) -> Callback:
        return _BudgetStop(self)


class _BudgetStop(Callback):
    """The loop hook that ends a trial when its :class:`Budget` is spent."""

    def __init__(self, budget: Budget):
        self.budget, self.spent = budget, False

    def on_optimizer_step(self, step, loss, lr, grad_norm) -> bool:
        self.spent = self.spent or bool(self.budget.steps and step >= self.budget.steps)
        return self.spent

    def on_epoch_end(self, epoch, dev_scores) -> bool:
        return self.spent or bool(self.budget.epochs and epoch >= self.budget.epochs)


def budget_of(args) -> Budget:
    """The budget of ``--budget-epochs`` / ``--budget-steps``."""
    return Budget(args.budget_epochs, args.budget_steps)


def make_pruner(startup_trials: int = 4):
    """Median pruning on per-evaluation dev F1, after a few complete trials and never at the first
    evaluation (every method is near 0 after one epoch)."""
    optuna = shared._optuna()
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
        shared.stamp(self.trial)
        if self.on_progress:
            self.on_progress(self.trial.number, entry)
        if self.trial.should_prune():
            raise shared._optuna().TrialPruned(f"dev F1 {entry['dev_f1']:.4f} at evaluation {self.evaluations} "
                                              f"(step {entry['step']})")


def run_trial(method, trial, space: dict, base_argv: list[str], log_dir: Path, on_progress=None,
              budget: Budget = Budget()) -> float:
    """Train one trial in this process (dev only) and return its best dev F1; raises TrialPruned."""
    values = _objective_flags(trial, space)
    flags = flags_of(values, space)
    trial.set_user_attr("flags", " ".join(flags))
    shared.stamp(trial)
    log_dir.mkdir(parents=True, exist_ok=True)
    cfg, method_cfg = parse_args(method, [*base_argv, *budget.trial_flags(), *flags, "--output-dir", str(log_dir),
                                          "--keep-checkpoints", "0"])

    with open(log_dir / "log.txt", "w", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        result = run(method, cfg, method_cfg, command="peftner tune",
                     callbacks=[Pruning(trial, on_progress), budget.stopper()], evaluate_test=False)
    trial.set_user_attr("trainable_params", result["trainable_params"])
    trial.set_user_attr("train_seconds", round(result["train_seconds"], 1))
    return result["best_dev_f1"]


def best_trial(study):
    optuna = shared._optuna()
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max(complete, key=lambda t: (t.value, -t.number)) if complete else None


def _computes(flags: str) -> list[str]:
    """A study's recorded flags less bookkeeping (threads, checkpoints, logging): what its trials computed."""
    from peftner.config import without_bookkeeping

    return without_bookkeeping(flags.split())


def search(method, workers: shared.Workers, n_trials: int, base_argv: list[str], work_dir: Path, status=None,
           command: str | None = None, tag: str | None = None, budget: Budget = Budget()):
    """This worker's share of ``method``'s search: trials until the study holds ``n_trials`` finished
    ones, each the beginning (``budget``) of the run of ``base_argv`` plus the trial's flags, its log
    under ``work_dir``.
    ``status()`` is the progress line's text (default: this study's); ``command`` is recorded at once, so
    a sweep stopped early still names the command that resumes it. ``tag`` keeps the studies of several
    searches of one method in one storage apart (:func:`study_name`)."""
    import transformers

    # transformers' log handler writes to the console it started with, past each trial's redirection into
    # its log.txt: without this, every trial printed the model's load report on the sweep's console.
    transformers.logging.set_verbosity_error()
    optuna = shared._optuna()
    state = optuna.trial.TrialState
    space = search_space(method)
    storage, stale_after, progress = workers.storage, workers.stale_after, workers.progress
    # Each worker seeds its sampler differently, so parallel workers do not propose the same point.
    sampler = optuna.samplers.TPESampler(seed=os.getpid(), n_startup_trials=5)
    name = study_name(method.name, tag)
    try:
        earlier = shared.read_study(storage, name)  # checked before this worker writes anything
    except PeftnerError:
        earlier = None
    flags = " ".join([*base_argv, *budget.sweep_flags()])
    recorded = earlier.user_attrs.get("budget_flags") if earlier else None
    same_search = recorded is not None and _computes(recorded) == _computes(flags)
    searched = bool(earlier and shared.counts(earlier)["done"])
    if recorded is not None and not same_search and searched:
        raise PeftnerError(f"study {name} was searched with the recipe flags '{recorded}' and this command gives "
                           f"'{flags}': their trials would not compare; give the same --extra and "
                           "budget, or another --storage (or --results-dir)")
    space_record = describe_space(space)
    recorded_space = earlier.user_attrs.get("search_space") if earlier else None
    if recorded_space not in (None, space_record) and searched:
        raise PeftnerError(f"study {name} was searched over another space than {method.name}'s now "
                           f"({space_changes(recorded_space, space_record)}): its trials would not compare; start "
                           f"the study over with `{shared.delete_command(storage, name)}`, or give another --storage")
    study = shared.load_study(storage, name, sampler=sampler, pruner=make_pruner())
    # the record stays when only bookkeeping differs; the shared table names every method's own command
    shared.set_study_attrs(study, method=method.name, budget_flags=recorded if same_search else flags,
                           search_space=space_record, **({"command": command} if command else {}))
    shared.reap_stale(study, storage, stale_after)
    if not study.get_trials(deepcopy=False):
        defaults = default_values(method, space)
        if defaults:
            study.enqueue_trial(defaults, user_attrs={"recipe_defaults": True}, skip_if_exists=True)

    def show(current: str = ""):
        if progress:
            progress.show((status() if status else search_status(study, n_trials, space)) + current)

    failures = 0  # in a row, in this worker
    while True:
        stop_if_signalled()
        shared.reap_stale(study, storage, stale_after)
        c = shared.counts(study)
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
                              on_progress=lambda n, e: show(f" | trial {n} step {e['step']} dev {e['dev_f1']:.4f}"),
                              budget=budget)
        except optuna.TrialPruned as pruned:
            trial.set_user_attr("pruned_at", str(pruned))
            study.tell(trial, state=state.PRUNED)
            failures = 0
        except Exception as err:  # noqa: BLE001 - a point of the space that fails: record it, go on
            message = str(err) if isinstance(err, PeftnerError) else f"{type(err).__name__}: {err}"
            trial.set_user_attr("error", message)
            study.tell(trial, state=state.FAIL)
            failures += 1
            if isinstance(err, DataError) or failures >= FAILURES_IN_A_ROW:  # not the point: the set-up
                raise PeftnerError(f"{name}: trial {trial.number} failed ({message}); "
                                   f"{'the data is at fault' if isinstance(err, DataError) else f'{failures} in a row'}"
                                   ": fix it and run the command again (failed trials do not count toward "
                                   "--n-trials)") from None
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): retried by the next worker that starts
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=state.FAIL)
            study.enqueue_trial(dict(trial.params))
            raise
        else:
            study.tell(trial, value)
            failures = 0
        gc.collect()  # the trial's model and data, before the next one loads
        show()
    return study


def _surplus(study, number: int, n_trials: int) -> bool:
    """Whether trial ``number`` would exceed ``n_trials``: finished trials plus the running ones
    started before it (lower numbers) already fill the study. Exactly one of two racing workers loses."""
    state = shared._optuna().trial.TrialState
    ahead = [t for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)) if t.number < number]
    return shared.counts(study)["done"] + len(ahead) >= n_trials


def search_status(study, n_trials: int, space: dict) -> str:
    c = shared.counts(study)
    left = max(0, n_trials - c["done"] - c["running"])
    best = best_trial(study)
    text = (f"[{study.study_name}] {c['done']}/{n_trials} trials: {c['complete']} complete, {c['pruned']} pruned, "
            f"{c['running']} running, {left} left" + (f"; {c['failed']} failed (not counted)" if c["failed"] else ""))
    if best:
        text += f" | best dev F1 {best.value:.4f} (trial {best.number}: {describe_params(best.params)})"
    return text


def sweep_status(storage, methods, n_trials: int) -> str:
    """One line for a whole sweep of several methods: trials over all studies, best dev F1 of each."""
    optuna = shared._optuna()
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    total = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "done": 0}
    bests = []
    for method in methods:
        if study_name(method) not in existing:
            continue
        study = shared.read_study(storage, study_name(method))
        c = shared.counts(study)
        for key in total:
            total[key] += c[key]
        best = best_trial(study)
        if best:
            bests.append(f"{method} {best.value:.4f}")
    target = n_trials * len(methods)
    left = max(0, target - total["done"] - total["running"])
    return (f"[sweep of {len(methods)} methods] {total['done']}/{target} trials: {total['complete']} complete, "
            f"{total['pruned']} pruned, {total['running']} running, {left} left"
            + (f"; {total['failed']} failed (not counted)" if total["failed"] else "")
            + (f" | best dev F1: {', '.join(bests)}" if bests else ""))


def describe_params(params: dict) -> str:
    return ", ".join(f"{k.replace('learning_rate', 'lr')} {v:.2g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in params.items())


def winner_flags(study) -> list[str]:
    best = best_trial(study)
    if best is None:
        raise PeftnerError(f"study {study.study_name} has no complete trial yet")
    return shlex.split(best.user_attrs["flags"])


def default_storage(out: Path) -> str:
    return str(out / "study.journal")


def add_sweep_arguments(parser, with_results_dir: bool = True):
    parser.add_argument("--storage", default=None,
                        help="Optuna storage shared by all workers: sqlite:///FILE.db, an RDB URL, or a journal "
                             "file path (default: study.journal in the results folder)")
    parser.add_argument("--n-trials", type=int, default=None,
                        help=f"finished trials per method the study should hold, over all workers (default: "
                             f"{DEFAULT_TRIALS}; with --status, what the study's command asked for)")
    parser.add_argument("--budget-epochs", type=int, default=None,
                        help="each trial trains the first N epochs of its run, on the run's own schedule "
                             "(default: the whole run)")
    parser.add_argument("--budget-steps", type=int, default=None,
                        help="each trial trains the first N optimizer steps of its run instead")
    parser.add_argument("--stale-after", type=float, default=shared.STALE_AFTER,
                        help="seconds without a heartbeat after which another host's running trial is retried")
    if with_results_dir:
        parser.add_argument("--results-dir", default=None,
                            help="default: results/<dataset>_tuned in the working directory (results/wnut16_tuned on the "
                                 "embedded data)")


def recorded_trials(study) -> int:
    """The ``--n-trials`` of the command that ran the study (recorded when its search starts), else the
    default: ``--status`` on a finished study must not report trials "left" that nobody asked for."""
    found = re.search(r"--n-trials[ =](\d+)", study.user_attrs.get("command", ""))
    return int(found.group(1)) if found else DEFAULT_TRIALS


SWEEP_MINIMUMS = {"n_trials": 1, "budget_epochs": 1, "budget_steps": 1, "stale_after": 1}


def check_sweep_arguments(args) -> None:
    check_at_least(args, SWEEP_MINIMUMS)
    if args.budget_epochs and args.budget_steps:
        raise PeftnerError("use either --budget-epochs or --budget-steps")


def sweep_summaries(storage, out: Path, methods) -> dict[str, dict]:
    """Per tuned method: trial counts, best dev F1 and flags, its budget; exports trials_<method>.csv."""
    optuna = shared._optuna()
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)} if storage is not None else set()
    result = {}
    for method in methods:
        if study_name(method) not in names:
            continue
        study = shared.read_study(storage, study_name(method))
        best = best_trial(study)
        c = shared.counts(study)
        result[method] = {**c, "best_dev_f1": best.value if best else None,
                          "best_trial": best.number if best else None,
                          "best_flags": best.user_attrs.get("flags") if best else None,
                          "budget_flags": study.user_attrs.get("budget_flags", ""),
                          "command": study.user_attrs.get("command", f"peftner tune {method}"),
                          "trials_csv": shared.export_csv(study, out / f"trials_{method}.csv").name}
    return result


def wait_for_search(study, workers: shared.Workers, n_trials: int, poll: float = 10.0):
    """Wait until no other worker's trial is running (the winner is only known then)."""
    optuna = shared._optuna()
    while True:
        shared.reap_stale(study, workers.storage, workers.stale_after)
        if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,
                                                        optuna.trial.TrialState.WAITING)):
            return
        if workers.progress:
            workers.progress.show(search_status(study, n_trials, {}) + " | waiting for other workers")
        time.sleep(poll)
