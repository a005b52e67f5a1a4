"""peftner tune and shared sweeps: search spaces, equal-steps budgets, run queues, two workers on one study."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, memorise_argv, subprocess_env

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)

optuna = pytest.importorskip("optuna")

from peftner.experiments import search  # noqa: E402
from peftner.experiments import storage as sweep  # noqa: E402
from peftner.experiments.plots import spread_labels  # noqa: E402
from peftner.experiments.results import MethodSummary, pareto_front, summarize, versus_full, welch_p  # noqa: E402
from peftner.experiments.tables import tuned_table_markdown  # noqa: E402
from peftner.errors import PeftnerError  # noqa: E402
from peftner.methods import METHODS, get_method  # noqa: E402
from peftner.methods.space import searched_fields  # noqa: E402


def test_max_steps_fixes_the_budget_and_eval_steps_adds_evaluations(tmp_path, tiny_model, memorisable_files):
    from peftner.recipe import main

    # 24 sentences, batch 8: 3 steps per epoch; 7 steps = 2 epochs and 1 step of a third.
    m = main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--max-steps", 7,
                                   "--eval-steps", 2, "--keep-checkpoints", 0, "--threads", 1))
    assert m["optimizer_steps"] == 7 and m["config"]["max_steps"] == 7 and m["epochs"] == 3
    # every 2 steps, plus each epoch end (3, 6) and the end of the budget (7)
    assert [h["step"] for h in m["history"]] == [2, 3, 4, 6, 7]
    assert m["best_dev_f1"] == max(h["dev_f1"] for h in m["history"])



def test_a_trial_is_the_beginning_of_its_run(tmp_path, tiny_model, memorisable_files):
    """A budgeted trial trains on its run's own schedule and stops: its learning rates and dev scores
    are the first ones of the whole run (not those of a shorter run, which warms up and decays faster)."""
    from peftner.config import parse_args
    from peftner.experiments.search import Budget
    from peftner.methods import get_method
    from peftner.recipe import run
    from peftner.training.callbacks import Callback

    class Rates(Callback):
        def __init__(self):
            self.rates = []

        def on_optimizer_step(self, step, loss, lr, grad_norm):
            self.rates.append(lr)

    def train(name: str, budget: Budget, *flags):
        rates, method = Rates(), get_method("lora")
        cfg, method_cfg = parse_args(method, memorise_argv(memorisable_files, tiny_model, tmp_path / name, "--epochs", 3,
                                                           "--keep-checkpoints", 0, "--threads", 1, *flags))
        result = run(method, cfg, method_cfg, callbacks=[rates, budget.stopper()], evaluate_test=False)
        return rates.rates, [(h["step"], h["dev_f1"]) for h in result["history"]]

    whole_rates, whole_history = train("whole", Budget())  # 3 steps per epoch, 9 in all
    rates, history = train("first-epoch", Budget(epochs=1))
    assert rates == whole_rates[:3] and history == whole_history[:1]
    rates, history = train("first-4-steps", Budget(steps=4), *Budget(steps=4).trial_flags())
    assert rates == whole_rates[:4] and [step for step, _ in history] == [1, 2, 3, 4]  # scored every 4 // 5 steps
    assert history[2] == whole_history[0]  # the same first epoch, scored at its end
    assert Budget(steps=4).sweep_flags() == ["--budget-steps", "4"] and Budget().sweep_flags() == []


def test_evaluation_hook_gets_the_training_time_so_far(tmp_path, tiny_model, memorisable_files):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import DevCurve

    from peftner.config import parse_args
    from peftner.recipe import run

    curve = DevCurve()
    cfg, method_cfg = parse_args(get_method("lora"), memorise_argv(memorisable_files, tiny_model, tmp_path / "run",
                                                                   "--epochs", 2, "--eval-steps", 2,
                                                                   "--keep-checkpoints", 0))
    m = run(get_method("lora"), cfg, method_cfg, callbacks=[curve])
    assert [p["step"] for p in curve.points] == [h["step"] for h in m["history"]] == [2, 3, 4, 6]
    seconds = [p["train_seconds"] for p in curve.points]
    assert seconds == sorted(seconds) and 0 < seconds[-1] <= m["train_seconds"] + 1e-6
    assert "train_seconds" not in m["history"][0]  # the history stays what a resumed run reproduces


def test_time_to_quality_takes_the_first_evaluation_at_the_target():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from throughput import first_reaching

    history = [{"step": 20, "dev_f1": 0.2, "train_seconds": 5.0}, {"step": 40, "dev_f1": 0.45, "train_seconds": 9.0},
               {"step": 60, "dev_f1": 0.5, "train_seconds": 14.0}]
    assert first_reaching(history, 0.45)["train_seconds"] == 9.0
    assert first_reaching(history, 0.51) is None


def test_budget_flags_below_one_are_refused(tmp_path):
    from peftner.config import parse_args

    with pytest.raises(PeftnerError, match="--max-steps must be at least 1"):
        parse_args(get_method("lora"), ["--max-steps", "0"])


def test_search_space_flags_and_recipe_defaults():
    space = search.search_space(get_method("ia3"))
    assert search.flags_of({"learning_rate": 0.002, "targets": "key,value"}, space) == [
        "--learning-rate", "0.002", "--target-modules", "key-value"]
    assert search.default_values(get_method("lora"), search.search_space(get_method("lora"))) == {
        "learning_rate": 1.2e-3, "r": 4, "targets": "all-linear"}
    # Every space contains its recipe's defaults: the first trial reproduces the untuned recipe.
    for method in METHODS.values():
        if method.search_space:
            assert search.default_values(method, search.search_space(method)) is not None, method.name
    assert searched_fields(get_method("ia3").search_space) == ["learning_rate", "target_modules"]


def test_every_point_of_a_space_parses(tmp_path):
    """Each option of each method's space is a valid recipe flag set (no trial fails on a typo)."""
    from peftner.config import parse_args

    for method in METHODS.values():
        space = method.search_space
        for key, spec in space.items():
            options = spec.options if isinstance(spec, search.Choice) else (spec.low, spec.high)
            assert key == "learning_rate" or isinstance(spec, search.Choice), (method.name, key)
            for option in options:
                point = {**search.default_values(method, space), key: option}
                parse_args(method, search.flags_of(point, space))


def test_storage_errors_are_one_line(tmp_path):
    with pytest.raises(PeftnerError, match="does not exist"):
        sweep.open_storage(str(tmp_path / "missing" / "sweep.journal"))
    with pytest.raises(PeftnerError, match="unknown scheme"):
        sweep.open_storage("redis://localhost/0")
    assert sweep.open_storage(f"sqlite:///{tmp_path}/storage.db") is not None


def test_run_queue_follows_the_order_of_its_keys_when_the_queue_was_filled_in_another(tmp_path):
    storage = sweep.open_storage(str(tmp_path / "queue.journal"))
    study = sweep.load_study(storage, "compare-x")
    for key in ["c", "b", "a"]:  # queued by an older plan, in its order
        study.enqueue_trial({}, user_attrs={"run": key})
    done = []
    assert sweep.run_queue(storage, "compare-x", ["a", "b", "c"], lambda key: done.append(key) or 1.0) == \
        {"a": 1.0, "b": 1.0, "c": 1.0}
    assert done == ["a", "b", "c"]
    trials = sweep.load_study(storage, "compare-x").trials
    assert [t.user_attrs["run"] for t in trials if t.state.name == "COMPLETE"] == ["a", "b", "c"]
    assert sweep.counts(sweep.load_study(storage, "compare-x"))["failed"] == 0  # the old entries were handed back
    done.clear()  # in order now: nothing is queued again
    study.enqueue_trial({}, user_attrs={"run": "d"})
    study.enqueue_trial({}, user_attrs={"run": "e"})
    sweep.run_queue(storage, "compare-x", ["d", "e"], lambda key: done.append(key) or 1.0)
    assert done == ["d", "e"] and len(sweep.load_study(storage, "compare-x").trials) == len(trials) + 2


def test_run_queue_runs_again_a_finished_run_whose_result_was_deleted(tmp_path):
    """check_cached's advice, "delete that run folder to run it again", holds for a queued matrix too."""
    storage = sweep.open_storage(str(tmp_path / "queue.journal"))
    results, done = {}, []

    def work(key):
        done.append(key)
        results[key] = len(done)
        return float(len(done))

    sweep.run_queue(storage, "compare-x", ["a", "b"], work, finished=results.__contains__)
    del results["a"]  # its folder deleted
    assert sweep.run_queue(storage, "compare-x", ["a", "b"], work, finished=results.__contains__) == \
        {"a": 3.0, "b": 2.0}
    assert done == ["a", "b", "a"]
    assert sweep.run_queue(storage, "compare-x", ["a", "b"], work, finished=results.__contains__) == \
        {"a": 3.0, "b": 2.0} and len(done) == 3  # once: nothing runs a third time
    assert sweep.counts(sweep.load_study(storage, "compare-x"))["failed"] == 0


def test_run_queue_runs_each_key_once_and_requeues_a_dead_workers_run(tmp_path):
    storage = sweep.open_storage(str(tmp_path / "queue.journal"))
    done = []
    # A worker that died while running "b": its trial is RUNNING, stamped with a process that is gone.
    study = sweep.load_study(storage, "compare-x")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study.enqueue_trial({}, user_attrs={"run": "b"})
    trial = study.ask()
    trial.set_user_attr("host", sweep.socket.gethostname())
    trial.set_user_attr("pid", int(dead.stdout))
    scores = sweep.run_queue(storage, "compare-x", ["a", "b", "c"], lambda key: done.append(key) or len(done))
    assert sorted(done) == ["a", "b", "c"]
    assert scores == {key: float(done.index(key) + 1) for key in done}
    again = sweep.run_queue(storage, "compare-x", ["a", "b", "c"], lambda key: done.append(key) or 0.0)
    assert len(done) == 3 and set(again) == {"a", "b", "c"}  # nothing reran
    # Another matrix in the same queue: a worker that pops its run hands it back untouched.
    study.enqueue_trial({}, user_attrs={"run": "other"})
    assert sweep.run_queue(storage, "compare-x", ["d"], lambda key: done.append(key) or 4.0) == {"d": 4.0}
    assert done[3:] == ["d"]
    waiting = [t.user_attrs["run"] for t in sweep.load_study(storage, "compare-x").trials if t.state.name == "WAITING"]
    assert waiting == ["other"]
    states = [t.state.name for t in sweep.load_study(storage, "compare-x").trials]
    # the dead worker's; b's requeued entry came before a and c, so the three were queued again in order
    # and their old entries handed back; the other matrix's run handed back once
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 5


def test_reaping_by_heartbeat_for_other_hosts():
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                       user_attrs={"host": "elsewhere", "pid": 1, "heartbeat": 1000.0})
    assert sweep.is_stale(frozen, stale_after=60, now=1100.0)
    assert not sweep.is_stale(frozen, stale_after=600, now=1100.0)
    # Same host, a live process (the id may have been reused): only the heartbeat can tell.
    alive = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, user_attrs={
        "host": sweep.socket.gethostname(), "pid": os.getppid(), "heartbeat": 1000.0})
    assert sweep.is_stale(alive, stale_after=60, now=1100.0) and not sweep.is_stale(alive, stale_after=600, now=1100.0)


def fake_summary(method, seeds, params):
    return MethodSummary(**{"method": method, "train_size": "all", "runs": len(seeds), "seeds": [42, 43, 44][:len(seeds)], "trainable_params": params,
            "total_params": 1000, "trainable_percent": 100 * params / 1000, "adapter_bytes": 4 * params,
            "backbone_bytes": 0, "test_f1_mean": sum(seeds) / len(seeds), "test_f1_std": 0.01,
            "test_f1_by_seed": dict(zip((42, 43, 44), seeds)), "best_dev_f1_mean": 0.5,
            "train_tokens_per_second_mean": 1.0, "peak_memory_mb_mean": 1.0, "wall_seconds_mean": 60.0,
            "best_dev_f1_std": 0.0, "metric": "entity_f1", "settings": "lr 0.001"})


def test_versus_full_with_welch_and_pareto_front():
    from scipy import stats

    full = fake_summary("full", [0.46, 0.47, 0.48], 1000)
    lora = fake_summary("lora", [0.40, 0.41, 0.42], 10)
    close = fake_summary("ptuning_v2", [0.45, 0.48, 0.47], 10)
    tiny = fake_summary("prompt", [0.30, 0.31, 0.29], 5)
    summary = [full, lora, close, tiny]
    versus_full(summary)
    assert lora.vs_full_points == pytest.approx(-6.0)
    assert lora.vs_full_p == pytest.approx(stats.ttest_ind([0.40, 0.41, 0.42], [0.46, 0.47, 0.48],
                                                              equal_var=False).pvalue)
    assert lora.vs_full_p < 0.01 and close.vs_full_p > 0.05
    full.settings = r"lr 3e-05, target_modules bert\..*\.(?:dense|key)"  # a resolved all-linear: escaped
    table = tuned_table_markdown(summary, {"lora": {"done": 20, "complete": 12, "pruned": 8, "best_dev_f1": 0.5,
                                                    "best_flags": "--r 4 --target-modules all-linear"}})
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert {len(re.findall(r"(?<!\\)\|", row)) for row in rows} == {12}, rows  # 11 columns on every row
    assert "| lora | `--r 4 --target-modules all-linear` |" in table  # the winner's flags as given
    assert "| -6.00 (**, p 0.00" in table and "| 20: 12 / 8 | 0.5000 |" in table and "| reference |" in table
    assert "(n.s., p" in table and "Welch" in table
    assert [s.method for s in pareto_front(summary)] == ["prompt", "ptuning_v2", "full"]  # lora: beaten at 10
    for s, memory in zip(summary, (900.0, 300.0, 600.0, 700.0)):
        s.peak_memory_mb_mean = memory
    # by memory: lora is cheapest, ptuning_v2 (600 MB) and full (900 MB) score higher, prompt (700 MB) lower
    assert [s.method for s in pareto_front(summary, "peak_memory_mb_mean")] == ["lora", "ptuning_v2", "full"]
    assert welch_p([0.5], [0.4, 0.6]) is None


def test_labels_of_equal_parameter_counts_are_spread():
    heights = spread_labels([10, 10, 10, 1e6], [0.40, 0.41, 0.405, 0.41], gap=0.02)
    same_x = sorted(heights[:3])
    assert same_x[1] - same_x[0] >= 0.02 - 1e-9 and same_x[2] - same_x[1] >= 0.02 - 1e-9
    assert heights[3] == 0.41  # far away on the x axis: left where it is


def test_summary_keeps_settings():
    from peftner.experiments.results import row_of
    from peftner.report import RunMetrics

    metrics = {"method": "lora", "test_f1": 0.5, "best_dev_f1": 0.5, "trainable_params": 10, "total_params": 100,
               "adapter_bytes": 1, "backbone_bytes": 1, "train_tokens_per_second": 1.0, "peak_memory_mb": 1.0,
               "config": {"learning_rate": 0.0012345}, "method_config": {"r": 16, "target_modules": ["all-linear"]}}
    row = row_of("lora", 42, None, RunMetrics.from_dict(metrics))
    assert row.settings == "lr 0.00123, r 16, target_modules all-linear"
    assert summarize([row])[0].settings == row.settings


def tune_worker(tmp_path, tiny_model, files, n_trials: int, seeds: int, epochs: int, **popen) -> subprocess.Popen:
    """A ``peftner tune lora`` worker process on the tiny model, sharing tmp_path/sweep.journal."""
    extra = (f"--model {tiny_model} --train-file {files['train']} --validation-file {files['validation']} "
             f"--test-file {files['test']} --batch-size 8 --epochs {epochs} --threads 1")
    command = [sys.executable, "-m", "peftner.cli", "tune", "lora", "--n-trials", str(n_trials), "--seeds",
               str(seeds), "--storage", str(tmp_path / "sweep.journal"), "--results-dir", str(tmp_path / "out"),
               "--extra", extra]
    return subprocess.Popen(command, cwd=REPO, env=subprocess_env(), text=True, **popen)


def test_two_workers_share_one_study(tmp_path, tiny_model, memorisable_files):
    """Two worker processes, one journal file: the study fills to exactly N trials with no trial or
    run done twice, and the winner is reported once."""
    storage = tmp_path / "sweep.journal"
    workers = [tune_worker(tmp_path, tiny_model, memorisable_files, n_trials=8, seeds=1, epochs=2,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = sweep.load_study(sweep.open_storage(str(storage)), "tune-lora")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 8
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
    assert len({t.number for t in finished}) == 8
    workers_seen = {t.user_attrs["pid"] for t in finished}
    assert workers_seen <= {w.pid for w in workers} and len(workers_seen) == 2, "both workers ran trials"
    runs = sweep.load_study(sweep.open_storage(str(storage)), "runs-lora")
    completed = [t.user_attrs["run"] for t in runs.trials if t.state.name == "COMPLETE"]
    assert completed == ["lora/size-all/seed-42"]  # run once, by one of the workers
    reports = [line for out in outputs for line in out.splitlines() if line.startswith("best trial")]
    assert len(reports) == 1, outputs
    assert not [out for out in outputs if "LOAD REPORT" in out], "a trial's model loading reached the console"
    best = search.best_trial(study)
    assert reports[0].startswith(f"best trial {best.number} of tune-lora: dev F1 {best.value:.4f}")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["sweeps"]["lora"]["done"] == 8 and summary["sweeps"]["lora"]["best_trial"] == best.number
    assert (tmp_path / "out" / "trials_lora.csv").read_text().count("\n") == 1 + len(study.trials)
    assert (tmp_path / "out" / "table.md").read_text().startswith("Command: `peftner tune lora --n-trials 8 ")


def test_compare_tune_writes_the_tuned_table(tmp_path, tiny_model, memorisable_files):
    """compare.py --tune: search each method, run its winner, and write the reader's table."""
    from peftner.experiments.compare import main

    result = main(["--methods", "head", "--tune", "--n-trials", "2", "--seeds", "1", "--epochs", "1",
                   "--model", str(tiny_model), "--train-file", str(memorisable_files["train"]),
                   "--validation-file", str(memorisable_files["validation"]),
                   "--test-file", str(memorisable_files["test"]), "--results-dir", str(tmp_path), "--name", "t",
                   "--extra", "--batch-size 8 --keep-checkpoints 0 --threads 1"])
    out = tmp_path / "t"
    table = (out / "table.md").read_text()
    assert "| method | tuned settings |" in table and "| head | `--learning-rate " in table and "| 2: " in table
    assert (out / "trials_head.csv").read_text().count("COMPLETE") + \
        (out / "trials_head.csv").read_text().count("PRUNED") == 2
    assert [s.method for s in result["summary"]] == ["head"]
    study = sweep.load_study(sweep.open_storage(str(out / "study.journal")), "tune-head")
    assert result["summary"][0].settings == f"lr {search.best_trial(study).params['learning_rate']:.3g}"


def test_one_line_for_the_whole_sweep(tmp_path):
    storage = sweep.open_storage(str(tmp_path / "s.journal"))
    for method, values in (("lora", [0.4, 0.5]), ("full", [0.45])):
        study = sweep.load_study(storage, search.study_name(method))
        for v in values:
            study.add_trial(optuna.trial.create_trial(value=v))
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    line = search.sweep_status(storage, ["lora", "full", "adapter"], n_trials=4)
    assert line == ("[sweep of 3 methods] 5/12 trials: 3 complete, 2 pruned, 0 running, 7 left "
                    "| best dev F1: lora 0.5000, full 0.4500")
    out = tmp_path / "progress.txt"
    with open(out, "w") as stream:  # not a terminal: one line per update, repeats dropped
        progress = sweep.ProgressLine(stream)
        progress.show(line)
        progress.show(line)
    assert out.read_text() == line + "\n"


def test_lora_on_all_linear_layers(tiny_model):
    """The search's all-linear option: every linear layer of the backbone gets an update, not the head."""
    from transformers import AutoModelForTokenClassification

    from peftner.config import parse_args

    method = get_method("lora")
    _, config = parse_args(method, search.flags_of({"learning_rate": 1e-3, "r": 4, "targets": "all-linear"},
                                                 method.search_space))
    model = method.apply(AutoModelForTokenClassification.from_pretrained(tiny_model, num_labels=3), config)
    adapted = {n.rsplit(".lora_A", 1)[0].split("encoder.layer.0.", 1)[-1] for n, _ in model.named_modules()
               if n.endswith("lora_A") and ".layer.0." in n}
    assert adapted == {"attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", "intermediate.dense", "output.dense"}


def test_sigterm_hands_the_trial_back_with_one_line(tmp_path, tiny_model, memorisable_files):
    """A scheduler stopping a worker mid-trial: exit 130 with one line (no traceback), and the
    trial's settings wait in the study for the next worker."""
    import signal
    import time

    storage = tmp_path / "sweep.journal"
    worker = tune_worker(tmp_path, tiny_model, memorisable_files, n_trials=50, seeds=0, epochs=200,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and worker.poll() is None:
        try:
            trials = sweep.read_study(sweep.open_storage(str(storage)), "tune-lora").trials
        except PeftnerError:  # the worker has not created the study yet
            trials = []
        if any(t.state.name == "RUNNING" and t.intermediate_values for t in trials):
            break  # inside the trial's training loop: it has reported a dev score
        time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)
    try:
        _, err = worker.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail(f"the worker went on for 60 s after SIGTERM: {worker.communicate()[1][-2000:]}")
    assert worker.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "peftner: interrupted (signal SIGTERM)", err
    study = sweep.load_study(sweep.open_storage(str(storage)), "tune-lora")
    states = [t.state.name for t in study.trials]
    interrupted = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(interrupted) == 1 and interrupted[0].user_attrs["interrupted"], states
    assert states[-1] == "WAITING" and set(states[:-1]) <= {"COMPLETE", "PRUNED", "FAIL"}, states
    assert study.trials[-1].system_attrs["fixed_params"] == interrupted[0].params  # enqueued again


TUNED_SUMMARY = REPO / "benchmarks" / "results" / "wnut16_tuned" / "summary.json"


def committed_winners() -> list:
    """(method, winning flags) of every method whose committed sweep has its 3 seed runs on test."""
    if not TUNED_SUMMARY.exists():
        return []
    data = json.loads(TUNED_SUMMARY.read_text())
    tested = {s["method"] for s in data["summary"] if s["runs"] >= 3}
    return [(m, s["best_flags"]) for m, s in sorted((data.get("sweeps") or {}).items()) if m in tested]


@pytest.mark.parametrize("method, flags", committed_winners() or [
    pytest.param(None, None, marks=pytest.mark.skip(reason="no sweep with its seed runs committed yet"))])
def test_recipe_defaults_are_the_committed_sweep_winners(method, flags, tiny_model):
    """Defaults = tuned winners: a plain recipe run trains with the committed sweep's best settings
    (the learning rate rounded to two significant digits). Module sets are compared as resolved on a
    BERT (the embedded model's layout, with its module names): a default may name by role
    (``--target-modules query-key-value-ffn``) what the sweep's trials listed by name."""
    import math
    import shlex

    from peftner.models.facts import facts_of
    from peftner.config import parse_args
    from peftner.models.loading import load_token_classifier

    spec = get_method(method)
    tuned_train, tuned_method = parse_args(spec, shlex.split(flags))
    train, method_config = parse_args(spec, [])
    if spec.for_model:
        facts = facts_of(load_token_classifier(str(tiny_model), {0: "O", 1: "B-PER"}))
        tuned_method, method_config = spec.for_model(tuned_method, facts), spec.for_model(method_config, facts)
    assert math.isclose(train.learning_rate, tuned_train.learning_rate, rel_tol=0.05), (method, flags)
    tuned_train.learning_rate = train.learning_rate
    assert (train, method_config) == (tuned_train, tuned_method), (method, flags)


def test_reports_leave_a_committed_journal_unchanged(tmp_path):
    """--status, progress lines and reports only read: a journal kept in git does not grow (or
    conflict between checkouts) because someone looked at it."""
    journal = tmp_path / "study.journal"
    storage = sweep.open_storage(str(journal))
    study = sweep.load_study(storage, search.study_name("lora"))
    study.tell(study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}), 0.5)
    before = journal.read_bytes()
    search.sweep_status(storage, ["lora"], 4)
    search.sweep_summaries(storage, tmp_path, ["lora"])
    assert sweep.read_study(storage, "tune-lora").best_value == 0.5
    assert journal.read_bytes() == before
    with pytest.raises(PeftnerError, match="no study named tune-full"):
        sweep.read_study(storage, "tune-full")


def test_a_worker_joining_a_study_appends_nothing_to_its_journal(tmp_path):
    """Every worker start loads each study and records its settings: once the study exists with the same
    settings, that writes nothing (a committed journal grew by a record per study per worker start)."""
    journal = tmp_path / "study.journal"
    storage = sweep.open_storage(str(journal))
    study = sweep.load_study(storage, "tune-lora")
    sweep.set_study_attrs(study, method="lora", budget_flags="--budget-epochs 2")
    before = journal.read_bytes()
    again = sweep.load_study(sweep.open_storage(str(journal)), "tune-lora")
    sweep.set_study_attrs(again, method="lora", budget_flags="--budget-epochs 2")
    assert journal.read_bytes() == before
    sweep.set_study_attrs(again, method="lora", budget_flags="--budget-epochs 3")
    assert journal.read_bytes() != before
    assert sweep.read_study(storage, "tune-lora").user_attrs["budget_flags"] == "--budget-epochs 3"


def test_a_search_continues_where_only_threads_or_checkpointing_differ(tmp_path):
    """A study searched with --threads 1 --keep-checkpoints 0 goes on with other threads or checkpointing
    (its record unchanged); another learning rate is refused."""
    import optuna

    from peftner.config import without_bookkeeping

    assert without_bookkeeping(["--threads", "1", "--lr", "0.1", "--keep-checkpoints=0", "--resume", "--seed", "3",
                                "--report-to", "none"]) == ["--lr", "0.1", "--seed", "3"]
    storage = sweep.open_storage(str(tmp_path / "s.journal"))
    recorded = "--keep-checkpoints 0 --threads 1 --budget-epochs 1"
    study = optuna.create_study(storage=storage, study_name="tune-lora", direction="maximize")
    study.set_user_attr("budget_flags", recorded)
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    budget = search.Budget(epochs=1)
    search.search(get_method("lora"), sweep.Workers(storage), 1, ["--threads", "2"], tmp_path / "work", budget=budget)
    assert sweep.read_study(storage, "tune-lora").user_attrs["budget_flags"] == recorded
    with pytest.raises(PeftnerError, match="would not compare"):
        search.search(get_method("lora"), sweep.Workers(storage), 1, ["--threads", "1", "--learning-rate", "0.1"],
                      tmp_path / "work", budget=budget)


def test_a_study_of_a_changed_search_space_is_refused_with_the_command_that_starts_it_over(tmp_path):
    """RandLoRA's learning-rate range moved (its old trials all diverged): the old study must not go on as if
    its trials came from the new space, and the one-line error gives Optuna's command that deletes it."""
    import shlex

    from peftner.methods.space import LogUniform

    storage_path = tmp_path / "s.journal"
    storage = sweep.open_storage(str(storage_path))
    study = optuna.create_study(storage=storage, study_name="tune-lora", direction="maximize")
    lora = get_method("lora")
    old_space = {**lora.search_space, "learning_rate": LogUniform(1e-3, 5e-2)}
    study.set_user_attr("search_space", search.describe_space(old_space))
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    budget = search.Budget(epochs=1)
    with pytest.raises(PeftnerError, match="another space") as refused:
        search.search(lora, sweep.Workers(storage), 1, [], tmp_path / "work", budget=budget)
    assert "learning_rate: LogUniform(low=0.001, high=0.05) -> LogUniform(low=0.0001, high=0.005);" not in \
        str(refused.value)  # the only change: no trailing separator
    assert "(learning_rate: LogUniform(low=0.001, high=0.05) -> LogUniform(low=0.0001, high=0.005))" in \
        str(refused.value) and "\n" not in str(refused.value)
    command = re.search(r"`(optuna delete-study [^`]+)`", str(refused.value)).group(1)
    assert str(storage_path) in command
    subprocess.run([sys.executable, "-c", "import sys; from optuna.cli import main; sys.exit(main())",
                    *shlex.split(command)[1:]], check=True, capture_output=True)  # the `optuna` script
    storage = sweep.open_storage(str(storage_path))
    assert "tune-lora" not in [s.study_name for s in optuna.get_all_study_summaries(storage)]
    # the same space goes on (a study that predates the record takes the current one)
    study = sweep.load_study(storage, "tune-lora")
    study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
    search.search(lora, sweep.Workers(storage), 1, [], tmp_path / "work", budget=budget)
    assert sweep.read_study(storage, "tune-lora").user_attrs["search_space"] == search.describe_space(lora.search_space)


def test_status_counts_against_the_trials_the_study_was_run_with(tmp_path, capsys):
    """`peftner tune M --status` on a finished 3-trial study: 3/3, none left (not 3/20, 17 left)."""
    from peftner.cli import main

    storage = sweep.open_storage(str(tmp_path / "study.journal"))
    study = sweep.load_study(storage, search.study_name("lora"))
    for lr in (1e-3, 2e-3, 3e-3):
        study.tell(study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}), lr)
    study.set_user_attr("command", "peftner tune lora --n-trials 3 --seeds 3")
    argv = ["tune", "lora", "--storage", str(tmp_path / "study.journal"), "--results-dir", str(tmp_path), "--status"]
    assert main(argv) == 0
    assert "3/3 trials: 3 complete, 0 pruned, 0 running, 0 left" in capsys.readouterr().out
    assert main([*argv, "--n-trials", "5"]) == 0  # asked for more: 2 left
    assert "3/5 trials" in capsys.readouterr().out and (tmp_path / "trials_lora.csv").exists()
