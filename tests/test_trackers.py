"""--report-to through Accelerate: what TensorBoard and MLflow hold after a run equals metrics.json,
read back offline with the trackers' own readers; bad --report-to values are one-line errors."""

import json

import pytest

from conftest import assert_tensorboard_equals_metrics, memorise_argv
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
    root, runs = tracked
    for name, metrics in runs.items():
        assert_tensorboard_equals_metrics(root / "logs" / "tiny-ner" / name, metrics)


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
