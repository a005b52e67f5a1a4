"""The suite (backbone x corpus x method x seed) on a tiny model: its summary, cross-corpus tables,
resuming, and one-line refusals of bad plans."""

import csv
from pathlib import Path
import re
import json

import pytest

from conftest import subprocess_env
from peftner.errors import PeftnerError
from peftner.experiments.suite_plan import load_plan
from peftner.experiments.suite_report import SUMMARY_COLUMNS

pytestmark = pytest.mark.slow  # minutes of training: run first (conftest.py)


def write_plan(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def tiny_plan(tmp_path, model, files, datasets, methods: str, more: str = ""):
    """A one-seed, one-epoch plan of the tiny model on corpora named ``datasets`` (all the memorisation files)."""
    flags = " ".join(f"--{k}-file {v}" for k, v in files.items())
    corpora = ", ".join(f'{{{name}: "{flags}"}}' for name in datasets)
    return write_plan(tmp_path / "plan.yaml", f"""
seeds: 1
extra: --epochs 1 --batch-size 8 --keep-checkpoints 0 --threads 1
entries:
  - backbone: tiny
    model: {model}
    datasets: [{corpora}]
    methods: {methods}
    {more}
""")


def test_suite_runs_reports_and_resumes(tmp_path, tiny_model, memorisable_files, monkeypatch):
    from peftner.cli import main

    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])  # the runs use this checkout's peftner
    plan = tiny_plan(tmp_path, tiny_model, memorisable_files, ["mem-a", "mem-b"],
                     '[full, {head_fast: "head --learning-rate 0.05"}]')
    out = tmp_path / "suite"
    assert main(["suite", str(plan), "--results-dir", str(out)]) == 0
    with open(out / "summary.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == SUMMARY_COLUMNS
    assert [(r["dataset"], r["method"]) for r in rows] == [
        ("mem-a", "full"), ("mem-a", "head_fast"), ("mem-b", "full"), ("mem-b", "head_fast")]
    assert all(r["backbone"] == "tiny" and r["seeds"] == "1" for r in rows)
    head_fast = out / "tiny" / "mem-a" / "runs" / "head_fast" / "size-all" / "seed-42" / "metrics.json"
    metrics = json.loads(head_fast.read_text())
    assert metrics["method"] == "head" and metrics["config"]["learning_rate"] == 0.05  # a label: method + flags
    summary = json.loads((out / "summary.json").read_text())
    assert summary["planned_runs"] == summary["finished_runs"] == 4
    ranks = {r["method"]: r for r in summary["across_corpora"]}
    assert ranks["full"]["corpora"] == 2 and ranks["full"]["mean_gap_to_full"] is None
    assert ranks["head_fast"]["mean_gap_to_full"] == pytest.approx(
        100 * (float(rows[1]["test_f1_mean"]) - float(rows[0]["test_f1_mean"])
               + float(rows[3]["test_f1_mean"]) - float(rows[2]["test_f1_mean"])) / 2)
    assert sorted(r["mean_rank"] for r in summary["across_corpora"]) == pytest.approx(
        sorted(sum(rank) / 2 for rank in _ranks(rows)))
    tables = (out / "tables.md").read_text()
    assert "#### tiny on mem-a" in tables and "#### Across corpora" in tables and "(4 of 4 planned runs" in tables
    assert (out / "f1_vs_params_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from peftner.experiments.suite import adopt_runs

    # another suite reusing this one's runs: the same settings are copied, other settings are not
    for epochs, reused in (("1", 2), ("2", 0)):
        again = write_plan(tmp_path / f"again{epochs}.yaml", plan.read_text().replace("--epochs 1", f"--epochs {epochs}")
                           .replace("methods:", f"reuse: {{mem-a: {out / 'tiny' / 'mem-a'}}}\n    methods:"))
        assert len(adopt_runs(load_plan(again)[0], tmp_path / f"reused{epochs}")) == reused

    stamp = head_fast.stat().st_mtime_ns
    assert main(["suite", str(plan), "--results-dir", str(out)]) == 0  # everything done: nothing reruns
    assert head_fast.stat().st_mtime_ns == stamp
    head_fast.unlink()
    assert main(["suite", str(plan), "--results-dir", str(out), "--report-only"]) == 0  # a partial report
    assert json.loads((out / "summary.json").read_text())["finished_runs"] == 3


def test_a_tuned_cell_searches_each_method_then_runs_its_winner(tmp_path, tiny_model, memorisable_files,
                                                                monkeypatch):
    from peftner.cli import main
    from peftner.experiments import storage

    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    plan = tiny_plan(tmp_path, tiny_model, memorisable_files, ["mem"], "[head, full]",
                     "tune: {n_trials: 2, budget_epochs: 1}")
    out = tmp_path / "suite"
    assert main(["suite", str(plan), "--results-dir", str(out)]) == 0
    trials = (out / "tiny" / "mem-tuned" / "trials_head.csv").read_text()
    assert trials.count("COMPLETE") + trials.count("PRUNED") == 2
    study = storage.read_study(storage.open_storage(str(out / "study.journal")), "tune-head-suite-tiny-mem-head")
    metrics = json.loads((out / "tiny" / "mem-tuned" / "runs" / "head" / "size-all" / "seed-42" / "metrics.json")
                         .read_text())
    assert metrics["config"]["learning_rate"] == pytest.approx(study.best_params["learning_rate"], rel=1e-5)
    with open(out / "summary.csv", encoding="utf-8") as f:
        assert [(r["method"], r["setting"]) for r in csv.DictReader(f)] == [("head", "tuned (2 trials)"),
                                                                             ("full", "tuned (2 trials)")]
    for cost in ("params", "memory"):  # the all-methods comparison's pictures, each with its Pareto front
        assert (out / f"pareto_{cost}_tiny_mem-tuned.png").stat().st_size > 10_000


def test_a_tuned_winner_that_is_the_defaults_reuses_the_defaults_runs(tmp_path, tiny_model, memorisable_files,
                                                                        monkeypatch):
    from peftner.cli import main

    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    plan = tiny_plan(tmp_path, tiny_model, memorisable_files, ["mem"], "[head]")
    tuned_entry = plan.read_text().split("entries:\n")[1].replace("[head]", "[head, full]")
    write_plan(plan, plan.read_text() + tuned_entry + "    tune: {n_trials: 1, budget_epochs: 1}\n")
    out = tmp_path / "suite"
    assert main(["suite", str(plan), "--results-dir", str(out)]) == 0
    defaults = out / "tiny" / "mem" / "runs" / "head" / "size-all" / "seed-42" / "metrics.json"
    winner = out / "tiny" / "mem-tuned" / "runs" / "head" / "size-all" / "seed-42" / "metrics.json"
    assert winner.read_bytes() == defaults.read_bytes()  # one trial: the defaults won; the same run, not retrained
    trained = json.loads((out / "tiny" / "mem-tuned" / "runs" / "full" / "size-all" / "seed-42" / "metrics.json")
                         .read_text())
    assert trained["method"] == "full"  # no defaults run of full to reuse: trained


def test_a_run_that_predates_an_option_has_its_default():
    from peftner.experiments.suite import _same_settings

    defaults = {"use_dora": False, "r": 8}
    assert _same_settings({"r": 4}, {"r": 4, "use_dora": False}, defaults)      # older run, option at its default
    assert not _same_settings({"r": 4}, {"r": 4, "use_dora": True}, defaults)   # ... not at its default
    assert not _same_settings({"r": 8}, {"r": 4, "use_dora": False}, defaults)  # another setting
    assert _same_settings({"r": 4, "gone": 1}, {"r": 4}, defaults)              # an option since removed


def _ranks(rows):
    """Each method's ranks by test F1 on the two corpora (the expected mean rank's inputs)."""
    by = {}
    for dataset in ("mem-a", "mem-b"):
        ordered = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: -float(r["test_f1_mean"]))
        for rank, r in enumerate(ordered, start=1):
            by.setdefault(r["method"], []).append(rank)
    return list(by.values())


@pytest.mark.parametrize("text, message", [
    ("entries: []", "non-empty list 'entries'"),
    ("entries:\n  - backbone: x\n    datasets: [wnut16]\n    methods: [lorra]", "entry 1: lorra: unknown method 'lorra'"),
    ("entries:\n  - backbone: x\n    datasets: [wnut16]\n    methods: [lora]\n    seeds: 0", "entry 1: seeds must be a whole number"),
    ("entries:\n  - backbone: x\n    datasets: [wnut16]\n    methods: [lora]\n    epochs: 3", "entry 1: unknown key 'epochs'"),
    ("entries:\n  - backbone: x y\n    datasets: [wnut16]\n    methods: [lora]", "backbone must be a name"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [lora]}\n  - {backbone: x, datasets: [wnut16], methods: [full]}",
     "entry 2: x on wnut16 (defaults) is planned twice"),
    ("entries:\n  - backbone: x\n    datasets: wnut16\n    methods: [lora]", "datasets must be a non-empty list"),
    ("entries:\n  - backbone: x\n    datasets: [wnut16]\n    methods: [lora, lora]", "method 'lora' listed twice"),
    ("entries: [\n", "invalid YAML"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [lora], tune: {n_trials: 0}}", "tune: n_trials must be"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [lora], tune: {trials: 3}}", "tune must be a mapping"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [lora], tune: {n_trials: 2, budget_epochs: 1, "
     "budget_steps: 5}}", "either budget_epochs or budget_steps"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [lora], reuse: {conll: x}}", "reuse"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [[lora], ia3]}", "either a list of methods or a list of groups"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [[lora], []]}", "a group of methods is empty"),
    ("entries:\n  - {backbone: x, datasets: [wnut16], methods: [[lora], [ia3, lora]]}", "method 'lora' listed twice"),
])
def test_bad_plans_are_one_line_errors(tmp_path, text, message):
    plan = write_plan(tmp_path / "plan.yaml", text)
    with pytest.raises(PeftnerError, match=re.escape(message)):
        load_plan(plan)


def test_a_bad_flag_in_the_plan_stops_before_any_run(tmp_path, capsys):
    from peftner.cli import main

    plan = write_plan(tmp_path / "plan.yaml", "entries:\n  - backbone: x\n    datasets: [wnut16]\n"
                                               "    methods: [{fast: 'lora --learnig-rate 0.1'}]\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["suite", str(plan), "--results-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("peftner: error: x/wnut16 fast:") and "--learnig-rate" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "x").exists()


def test_only_names_a_cell_of_the_plan(tmp_path, capsys):
    from peftner.cli import main

    plan = write_plan(tmp_path / "plan.yaml", "entries:\n  - backbone: x\n    datasets: [wnut16]\n    methods: [lora]\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["suite", str(plan), "--only", "x/conll", "--results-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"peftner: error: --only: 'x/conll' is no backbone or "
                                               f"backbone/dataset of {plan}")


def test_the_committed_plan_loads():
    from conftest import REPO

    cells = load_plan(REPO / "benchmarks" / "suite.yaml")
    assert {c.backbone for c in cells} >= {"minilm"} and all(c.labels for c in cells)


def test_method_groups_run_one_after_another_each_seed_by_seed(tmp_path):
    from peftner.experiments.suite import cell_matrix

    plan = write_plan(tmp_path / "plan.yaml", "seeds: 2\nentries:\n  - backbone: x\n    datasets: [wnut16]\n"
                                               "    methods: [[lora, {fast: ia3 --learning-rate 0.1}], [full]]\n")
    cell, = load_plan(plan)
    assert list(cell.labels) == ["lora", "fast", "full"] and cell.labels["fast"] == ("ia3", ["--learning-rate", "0.1"])
    assert list(cell_matrix(cell, tmp_path, ["python"]).specs) == [
        "lora/size-all/seed-42", "fast/size-all/seed-42", "lora/size-all/seed-43", "fast/size-all/seed-43",
        "full/size-all/seed-42", "full/size-all/seed-43"]


def test_every_cells_first_group_runs_before_any_cells_second(tmp_path, monkeypatch):
    """A plan cut short by its budget has its first groups on every corpus, not all groups on the first."""
    from peftner.experiments import suite

    plan = write_plan(tmp_path / "plan.yaml", "seeds: 2\nentries:\n  - backbone: x\n    datasets: [wnut16, conll2003]\n"
                                               "    methods: [[lora, full], [ia3]]\n  - backbone: y\n"
                                               "    datasets: [wnut16]\n    methods: [lora]\n")
    ran = []
    monkeypatch.setattr(suite, "run_matrix", lambda matrix, workers, queue: ran.append((queue, list(matrix.specs))))
    suite.run_suite(load_plan(plan), tmp_path, None, ["python"])
    seeds = lambda *labels: [f"{label}/size-all/seed-{seed}" for seed in (42, 43) for label in labels]  # noqa: E731
    assert ran == [("suite-x-wnut16", seeds("lora", "full")), ("suite-x-conll2003", seeds("lora", "full")),
                   ("suite-y-wnut16", seeds("lora")),
                   ("suite-x-wnut16", [*seeds("lora", "full"), *seeds("ia3")]),  # the first group's runs: done
                   ("suite-x-conll2003", [*seeds("lora", "full"), *seeds("ia3")])]


def test_the_report_names_the_whole_plans_command_not_a_workers_cells():
    from peftner.experiments.suite import plan_command

    assert plan_command("python benchmarks/suite.py plan.yaml --only tiny/mem-a --stale-after 60") == \
        "python benchmarks/suite.py plan.yaml --stale-after 60"
    assert plan_command("peftner suite 'my plan.yaml' --only=tiny --report-only") == "peftner suite 'my plan.yaml'"


def test_suite_options_are_not_abbreviated(capsys):
    from peftner.cli import main

    with pytest.raises(SystemExit) as stop:  # else the report would name a worker's `--onl` cells
        main(["suite", "plan.yaml", "--onl", "tiny"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --onl tiny" in capsys.readouterr().err


def test_data_files_are_relative_to_the_plan(tmp_path, monkeypatch):
    (tmp_path / "plans" / "data").mkdir(parents=True)
    plan = write_plan(tmp_path / "plans" / "plan.yaml", "entries:\n  - backbone: x\n    datasets: [{mine: "
                      '"--train-file data/a.conll --validation-file=data/b.conll --test-file /abs/c.conll"}]\n'
                      "    methods: [lora]\n")
    monkeypatch.chdir(tmp_path)  # not the plan's folder
    (cell,) = load_plan(plan)
    assert cell.data_flags == ["--train-file", str(tmp_path / "plans" / "data" / "a.conll"),
                               f"--validation-file={tmp_path / 'plans' / 'data' / 'b.conll'}", "--test-file", "/abs/c.conll"]


def test_the_committed_plan_names_files_that_exist():
    from conftest import REPO

    files = [flag for c in load_plan(REPO / "benchmarks" / "suite.yaml")
             for previous, flag in zip(c.data_flags, c.data_flags[1:]) if previous.endswith("-file")]
    assert files and all(Path(f).is_file() for f in files), files


def test_a_tuned_winner_at_an_end_of_its_learning_rate_range_is_named():
    """11 of the 26 tuned winners on WNUT-16 sat in the top tenth of their range: the report says which."""
    from peftner.experiments.suite_report import range_edge
    from peftner.methods import get_method
    from peftner.report import RunMetrics

    span = get_method("lora").search_space["learning_rate"]
    assert range_edge("lora", RunMetrics(config={"learning_rate": span.high * 0.95})) == "top"
    assert range_edge("lora", RunMetrics(config={"learning_rate": span.low * 1.05})) == "bottom"
    assert range_edge("lora", RunMetrics(config={"learning_rate": (span.low * span.high) ** 0.5})) == ""
    assert range_edge("lora", RunMetrics(config={})) == ""


def test_the_report_says_whether_the_defaults_transfer_beyond_where_they_were_tuned():
    """The quality target on every cell but the one the defaults were tuned on, counting only 3-seed cells."""
    from peftner.config import default_model
    from peftner.experiments.results import MethodSummary
    from peftner.experiments.suite_report import SuiteRow, defaults_transfer
    from peftner.report import model_label

    def row(backbone, dataset, method, f1, seeds=3, share=0.5, setting="defaults"):
        summary = MethodSummary(method, "all", seeds, list(range(seeds)), 1, 100, 100.0 if method == "full" else share,
                                0, 0, f1, 0.0, {}, f1, 0.0, 1.0, 1.0, None)
        model = model_label(default_model()) if backbone == "minilm" else backbone
        return SuiteRow(backbone, dataset, summary, model, "", "here", setting)

    rows = [row("minilm", "wnut16", "full", 0.60), row("minilm", "wnut16", "lora", 0.50),  # where they were tuned
            row("minilm", "ner-a", "full", 0.60), row("minilm", "ner-a", "lora", 0.598),  # met: within 0.5 points
            row("e5", "ner-a", "full", 0.60), row("e5", "ner-a", "lora", 0.58), row("e5", "ner-a", "ia3", 0.59),
            row("e5", "ner-b", "full", 0.60), row("e5", "ner-b", "lora", 0.40, seeds=1),  # still running
            row("e5", "ner-a", "full", 0.50, setting="tuned (5 trials)"), row("e5", "ner-a", "lora", 0.40,
                                                                               setting="tuned (5 trials)")]
    line = defaults_transfer(rows)
    assert "tuned on all-MiniLM-L6-v2 (embedded) × wnut16" in line
    assert "met on 1 of 2 (minilm on ner-a); missed on e5 on ner-a (gap -1.00 F1 points); 1 more cell has" in line
    assert defaults_transfer(rows[:2] + rows[7:9]) == ""  # nothing elsewhere with 3 seeds yet
