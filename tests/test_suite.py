"""The suite (peftner/experiments/suite.py): cells of methods x seeds through the run queue, one
summary.csv with the issue's columns, resumed without rerunning finished runs."""

from __future__ import annotations

import csv
import sys

import pytest

from peftner.errors import PeftnerError
from peftner.experiments import suite


def test_suite_writes_summary_csv_and_resumes(tiny_model, memorisable_files, tmp_path):
    files = ("--train-file", str(memorisable_files["train"]), "--validation-file", str(memorisable_files["validation"]),
             "--test-file", str(memorisable_files["test"]))
    plan = [suite.Cell("tiny-bert", str(tiny_model), "memorise", ("lora",), 1, flags=files),
            suite.Cell("tiny-bert", str(tiny_model), "memorise", ("lora",), 1, "r2", (*files, "--r", "2"))]
    out = tmp_path / "suite"
    extra = ["--epochs", "1", "--batch-size", "8", "--keep-checkpoints", "0"]
    rows = suite.run_suite(plan, out, extra=extra, launcher=[sys.executable])
    with open(out / "summary.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(suite.SUMMARY_COLUMNS)
    assert [(r["backbone"], r["dataset"], r["method"], r["seeds"]) for r in table] == [
        ("tiny-bert", "memorise", "lora", "42"), ("tiny-bert", "memorise", "lora (r2)", "42")]
    assert int(table[1]["trainable_params"]) < int(table[0]["trainable_params"])  # the variant's flags applied
    assert (out / "tiny-bert_memorise" / "table.md").is_file() and (out / "tiny-bert_memorise_r2" / "runs.csv").is_file()
    metrics = out / "tiny-bert_memorise" / "runs" / "lora" / "size-all" / "seed-42" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    assert suite.run_suite(plan, out, extra=extra, launcher=[sys.executable]) == rows  # resumed: nothing reruns
    assert metrics.stat().st_mtime_ns == before


def test_default_plan_and_its_filters(tmp_path, capsys):
    plan = suite.default_plan(tmp_path)
    encoders = [c for c in plan if c.backbone in ("all-MiniLM-L6-v2", "multilingual-e5-small")]
    assert len(encoders) == 2 * len(suite.CORPORA) and all(c.seeds == 3 and len(c.methods) == 7 for c in encoders)
    assert {c.folder for c in plan if c.backbone not in ("all-MiniLM-L6-v2", "multilingual-e5-small")} == {
        "smollm2-135m_wnut16", "smollm2-135m_wnut16_bidirectional", "gemma-3-270m_wnut16"}
    suite.main(["--dry-run", "--only", "gemma-3-270m", "--backbones", str(tmp_path)])
    assert capsys.readouterr().out.strip() == "gemma-3-270m_wnut16: lora, qlora x 1 seed(s)"
    with pytest.raises(PeftnerError, match="--only: unknown bert; choose from"):
        suite.main(["--dry-run", "--only", "bert"])
    with pytest.raises(PeftnerError, match="smollm2-135m: not built; run python benchmarks/real_backbones.py build"):
        suite.main(["--only", "smollm2-135m", "--backbones", str(tmp_path)])
