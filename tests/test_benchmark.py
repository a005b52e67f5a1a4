"""Summary arithmetic of the comparison on fixed inputs, and its files (plot included)."""

import csv
import json
from pathlib import Path

import pytest

from peftner.experiments.matrix import parse_train_sizes, plan_runs
from peftner.experiments.outputs import write_outputs
from peftner.experiments.results import mean_std, row_of, summarize
from peftner.experiments.tables import table_markdown
from peftner.errors import PeftnerError
from peftner.report import RunMetrics

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)


def fake_metrics(f1, trainable, total=1000, dev=0.5, tps=100.0):
    return RunMetrics.from_dict({"test_f1": f1, "best_dev_f1": dev, "trainable_params": trainable, "total_params": total,
            "trainable_percent": 100 * trainable / total, "adapter_bytes": 4 * trainable, "backbone_bytes": 4000,
            "train_seconds": 10.0, "train_tokens_per_second": tps, "peak_memory_mb": 100.0,
            "wall_seconds": 12.0, "num_processes": 1, "metric": "entity_f1", "train_sentences": 50})


def test_mean_and_sample_std():
    assert mean_std([0.4, 0.5, 0.6]) == (pytest.approx(0.5), pytest.approx(0.1))
    assert mean_std([0.7]) == (0.7, 0.0)


def test_summary_groups_by_method_and_size():
    rows = [row_of("lora", 42, None, fake_metrics(0.40, 10, tps=100)),
            row_of("lora", 43, None, fake_metrics(0.50, 10, tps=300)),
            row_of("lora", 44, None, fake_metrics(0.60, 10, tps=200)),
            row_of("full", 42, None, fake_metrics(0.55, 1000, dev=0.6))]
    summary = {s.method: s for s in summarize(rows)}
    lora = summary["lora"]
    assert lora.runs == 3 and lora.seeds == [42, 43, 44]
    assert lora.test_f1_mean == pytest.approx(0.5)
    assert lora.test_f1_std == pytest.approx(0.1)
    assert lora.trainable_percent == pytest.approx(1.0)
    assert lora.train_tokens_per_second_mean == pytest.approx(200)
    assert summary["full"].trainable_percent == pytest.approx(100.0)
    assert summary["full"].test_f1_std == 0.0
    table = table_markdown(list(summary.values()))
    assert lora.test_f1_by_seed == {42: 0.40, 43: 0.50, 44: 0.60}
    assert "| lora | all | 10 | 1.000% |" in table and "| 0.5000 ± 0.1000 | 0.400 / 0.500 / 0.600 |" in table
    assert "| 0.5500 (1 seed) | 0.550 |" in table  # one run has no spread: not "± 0.0000"


def test_seeds_that_learned_nothing_are_counted_and_named_in_the_table():
    """A seed whose dev F1 stayed 0 at every evaluation is a failed training: its 0 stays in the mean
    (what the default gives), and the table says how many seeds it was."""
    def run(seed, dev_scores, f1):
        metrics = fake_metrics(f1, 10, dev=max(dev_scores))
        metrics.history = [{"epoch": i + 1, "dev_f1": d} for i, d in enumerate(dev_scores)]
        return row_of("randlora", seed, None, metrics)

    rows = [run(42, [0.0, 0.0], 0.0), run(43, [0.0, 0.3], 0.4), run(44, [0.1, 0.3], 0.5)]
    assert [r.learned_nothing for r in rows] == [True, False, False]
    summary = summarize(rows)[0]
    assert summary.seeds_learned_nothing == 1 and summary.test_f1_mean == pytest.approx(0.3)
    assert "| 0.3000 ± 0.2646, 1 of 3 seeds learned nothing |" in table_markdown([summary])
    assert "its seed learned nothing" in table_markdown(summarize(rows[:1]))
    assert "learned nothing" not in table_markdown(summarize(rows[1:]))


def test_plan_and_sizes():
    specs = plan_runs(["lora", "full"], 2, [100, None])
    assert [s.key for s in specs[:3]] == ["lora/size-100/seed-42", "full/size-100/seed-42", "lora/size-100/seed-43"]
    assert len(specs) == 8
    assert parse_train_sizes("100,300,all") == [100, 300, None]
    with pytest.raises(PeftnerError, match="positive integers"):
        parse_train_sizes("100,lots")


def test_outputs_written(tmp_path):
    rows = []
    for size in (10, None):
        for seed in (42, 43):
            rows.append(row_of("lora", seed, size, fake_metrics(0.3 if size else 0.5, 10)))
            rows.append(row_of("full", seed, size, fake_metrics(0.35 if size else 0.55, 1000)))
    summary = summarize(rows)
    written = write_outputs(tmp_path, rows, summary,
                            {"command": "x", "machine": "test", "versions": {"torch": "9.9", "peft": None}})
    names = {p.name for p in written}
    assert "Machine: test\n\nVersions: torch 9.9\n" in (tmp_path / "table.md").read_text()
    assert names == {"runs.csv", "summary.json", "table.md", "f1_vs_params.png", "f1_vs_train_size.png"}
    for png in ("f1_vs_params.png", "f1_vs_train_size.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with open(tmp_path / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    assert len(json.loads((tmp_path / "summary.json").read_text())["summary"]) == 4


def test_compare_end_to_end_on_tiny_model_resumes(tmp_path, tiny_model, memorisable_files, monkeypatch):
    from conftest import subprocess_env
    from peftner.experiments.compare import main

    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])  # the recipes run this checkout's peftner

    argv = ["--methods", "lora,head", "--seeds", "1", "--epochs", "1", "--model", str(tiny_model),
            "--train-file", str(memorisable_files["train"]), "--validation-file", str(memorisable_files["validation"]),
            "--test-file", str(memorisable_files["test"]), "--results-dir", str(tmp_path), "--name", "tiny",
            "--extra", "--batch-size 8 --keep-checkpoints 0", "--report-to", "tensorboard"]
    result = main(argv)
    out = tmp_path / "tiny"
    for name in ("runs.csv", "summary.json", "table.md", "f1_vs_params.png"):
        assert (out / name).exists(), name
    # every run logged under one experiment, one TensorBoard run each
    runs = sorted(p.name for p in (out / "logs" / "peftner-compare-tiny").iterdir())
    assert runs == ["head_size-all_seed-42", "lora_size-all_seed-42"]
    assert all(list((out / "logs" / "peftner-compare-tiny" / r).glob("events.out.tfevents.*")) for r in runs)
    assert {s.method for s in result["summary"]} == {"lora", "head"}
    metrics = out / "runs" / "lora" / "size-all" / "seed-42" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    again = main(argv)  # everything is done: nothing reruns, same numbers
    assert metrics.stat().st_mtime_ns == stamp
    assert again["summary"] == result["summary"]


def test_reload_check_finds_a_run_exact_and_a_tampered_one_not(tmp_path, tiny_model, memorisable_files, monkeypatch):
    """benchmarks/reload_check.py: peftner predict on a run's test words, compared word by word."""
    import importlib.util

    from conftest import REPO, memorise_argv, subprocess_env
    from peftner.recipe import PREDICTIONS_FILE, main

    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])  # predict runs this checkout's peftner
    spec = importlib.util.spec_from_file_location("reload_check", REPO / "benchmarks" / "reload_check.py")
    reload_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reload_check)
    run = tmp_path / "run"
    metrics = main("lora", memorise_argv(memorisable_files, tiny_model, run, "--epochs", 2))
    monkeypatch.chdir(tmp_path)
    row = reload_check.check(Path("run"))  # as typed: relative to where the command runs
    assert row["exact"] == "yes" and row["tags_differing"] == 0
    assert row["predict_accuracy"] == metrics["test_accuracy"] and row["test_words"] > 0
    scored = run / PREDICTIONS_FILE  # flip one scored tag: the check must see it
    lines = scored.read_text().splitlines()
    token, gold, predicted = lines[0].split("\t")
    lines[0] = "\t".join([token, gold, "O" if predicted != "O" else gold if gold != "O" else "B-X"])
    scored.write_text("\n".join(lines) + "\n")
    row = reload_check.check(run)
    assert row["exact"] == "no" and row["tags_differing"] == 1
