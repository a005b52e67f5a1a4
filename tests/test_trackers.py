"""--report-to through Accelerate: what TensorBoard and MLflow hold after a run equals metrics.json,
read back offline with the trackers' own readers; bad --report-to values are one-line errors."""

import json

import pytest

from conftest import memorise_argv
from peftner.recipe import main


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, memorisable_files, tiny_model):
    """Two LoRA runs logged to TensorBoard and an MLflow file store under one experiment."""
    root = tmp_path_factory.mktemp("trackers")
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", (root / "mlruns").as_uri())
    patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants opting in to its file store
    runs = {}
    try:
        for name, seed in (("first", 0), ("second", 1)):
            main("lora", memorise_argv(memorisable_files, tiny_model, root / name, "--epochs", 3, "--learning-rate",
                                       "3e-2", "--seed", seed, "--report-to", "tensorboard,mlflow", "--experiment",
                                       "tiny-ner", "--run-name", name, "--logging-dir", root / "logs"))
            runs[name] = json.loads((root / name / "metrics.json").read_text())
    finally:
        patch.undo()
    return root, runs


def test_tensorboard_events_equal_metrics_json(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, runs = tracked
    for name, metrics in runs.items():
        events = EventAccumulator(str(root / "logs" / "tiny-ner" / name))
        events.Reload()
        scalar = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
        assert scalar["dev/f1"] == [(h["epoch"], pytest.approx(h["dev_f1"], abs=1e-6)) for h in metrics["history"]]
        assert scalar["test/f1"] == [(metrics["optimizer_steps"], pytest.approx(metrics["test_f1"], abs=1e-6))]
        for etype, scores in metrics["per_type"].items():
            assert scalar[f"test/f1_{etype}"][0][1] == pytest.approx(scores["f1"], abs=1e-6)
            assert len(scalar[f"dev/f1_{etype}"]) == metrics["epochs"]
        for tag in ("train/loss", "train/learning_rate", "train/grad_norm"):
            assert [step for step, _ in scalar[tag]] == list(range(1, metrics["optimizer_steps"] + 1)), tag
        assert scalar["final/trainable_params"][0][1] == metrics["trainable_params"]
        assert scalar["final/adapter_bytes"][0][1] == pytest.approx(metrics["adapter_bytes"])
        for key in ("train_tokens_per_second", "peak_memory_mb"):
            assert scalar[f"final/{key}"][0][1] == pytest.approx(metrics[key], rel=1e-6)


def test_mlflow_runs_equal_metrics_json_under_one_experiment(tracked):
    from mlflow.tracking import MlflowClient

    root, runs = tracked
    client = MlflowClient((root / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tiny-ner")
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(found) == {"first", "second"}
    for name, metrics in runs.items():
        run = found[name]
        dev = client.get_metric_history(run.info.run_id, "dev/f1")
        assert sorted((m.step, m.value) for m in dev) == [(h["epoch"], h["dev_f1"]) for h in metrics["history"]]
        assert run.data.metrics["test/f1"] == metrics["test_f1"]
        assert run.data.metrics["test/precision"] == metrics["test_precision"]
        assert run.data.metrics["final/trainable_params"] == metrics["trainable_params"]
        steps = client.get_metric_history(run.info.run_id, "train/loss")
        assert len(steps) == metrics["optimizer_steps"]
        params = run.data.params
        assert params["run/method"] == "lora" and params["run/seed"] == str(metrics["seed"])
        assert params["run/learning_rate"] == "0.03" and params["method/r"] == str(metrics["method_config"]["r"])


@pytest.mark.parametrize("value, message", [
    ("tensorbord", "--report-to: unknown tracker 'tensorbord'; choose from none, tensorboard"),
    ("wandb", "--report-to wandb: the package is not installed (pip install wandb)"),
])
def test_bad_report_to_is_one_line(value, message, monkeypatch, capsys, memorisable_files, tiny_model, tmp_path):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--report-to", value))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"peftner: error: {message}")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_no_trackers_by_default(memorisable_files, tiny_model, tmp_path):
    main("lora", memorise_argv(memorisable_files, tiny_model, tmp_path / "run", "--epochs", 1))
    assert not (tmp_path / "run" / "logs").exists()
