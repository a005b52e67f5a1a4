"""Multi-process behaviour on CPU: 2 gloo processes through `accelerate launch`.

`accelerate launch --cpu --num_processes 2` starts one process in accelerate 1.15; setting
ACCELERATE_USE_CPU=1 with `--multi_gpu` gives two MULTI_CPU processes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (assert_tensorboard_equals_metrics, memorisable_sentences, memorise_argv, subprocess_env,
                      write_conll)

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)

SCRIPTS = Path(__file__).parent / "dist_scripts"
ROOT = Path(__file__).resolve().parent.parent


def launch(num_processes: int, script: Path, *args, timeout=300):
    env = subprocess_env(ACCELERATE_USE_CPU="1")
    multi = ["--multi_gpu"] if num_processes > 1 else []
    command = [sys.executable, "-m", "accelerate.commands.launch", *multi, "--num_processes",
               str(num_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(29500 + os.getpid() % 1000 + num_processes), str(script), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_process_training_identical_weights(tmp_path, tiny_model, memorisable_files):
    out = tmp_path / "run"
    out.mkdir()
    launch(2, SCRIPTS / "train_and_dump.py", "lora", out, "--",
           *memorise_argv(memorisable_files, tiny_model, out, "--epochs", 3, "--learning-rate", "1e-2"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    ranks = sorted(out.glob("weights-rank*.sha256"))
    assert [p.name for p in ranks] == ["weights-rank0.sha256", "weights-rank1.sha256"]
    assert ranks[0].read_text() == ranks[1].read_text()


def test_only_the_main_process_logs_to_trackers(tmp_path, tiny_model, memorisable_files):
    """Both processes build the trackers; the event files are one process's, in one run folder, and hold
    what metrics.json holds."""
    out, logs = tmp_path / "run", tmp_path / "logs"
    launch(2, ROOT / "recipes" / "lora_ner.py",
           *memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--learning-rate", "3e-2",
                          "--report-to", "tensorboard", "--experiment", "tiny-ner", "--run-name", "two",
                          "--logging-dir", logs))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    events = sorted(logs.rglob("events.out.tfevents.*"))
    assert events and all(e.is_relative_to(logs / "tiny-ner" / "two") for e in events), events
    writers = {e.name.rsplit(".", 2)[1] for e in events}  # events.out.tfevents.TIME.HOST.PID.N
    assert len(writers) == 1, events
    assert_tensorboard_equals_metrics(logs / "tiny-ner" / "two", metrics)


@pytest.mark.parametrize("n_sentences", [7, 8])
def test_evaluation_over_two_processes_equals_one(tmp_path, tiny_model, n_sentences):
    data = write_conll(tmp_path / "eval.conll", memorisable_sentences(n_sentences, seed=3))
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    launch(1, SCRIPTS / "eval_dump.py", tiny_model, data, one, 2)
    launch(2, SCRIPTS / "eval_dump.py", tiny_model, data, two, 2)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a["num_processes"], b["num_processes"]) == (1, 2)
    assert len(a["predicted"]) == len(b["predicted"]) == n_sentences
    assert a["predicted"] == b["predicted"]
    for key in ("predicted_entities", "gold_entities", "f1", "precision", "recall"):
        assert a[key] == b[key], key
