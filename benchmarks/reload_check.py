"""Reload check of finished runs: `peftner predict` on a run's test words, in a new process, must give
back the tags the run was scored with, and so metrics.json's `test_accuracy`, exactly.

    python benchmarks/reload_check.py RUN_DIR [RUN_DIR ...]     # e.g. a suite run, .../runs/lora/size-all/seed-42

Each run's row (one per run folder, replaced when checked again) lands in
benchmarks/results/suite/reload_checks.csv; `python benchmarks/update_docs.py` puts the table in
docs/benchmarks.md. A mismatch is a row with `exact = no` and exit status 1, not an exception.
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peftner.report import machine_description, model_label
from peftner.recipe import PREDICTIONS_FILE
from peftner.reuse.text import read_tagged_conll

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
CHECKS = BENCHMARKS / "results" / "suite" / "reload_checks.csv"
COLUMNS = ("run", "backbone", "method", "test_words", "test_accuracy", "predict_accuracy", "tags_differing", "exact",
           "predict_seconds", "machine")


def check(run: Path) -> dict:
    """Predict the run's scored test words again and compare (token, gold, predicted) word by word."""
    run = run.resolve()
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    scored = read_tagged_conll(run / PREDICTIONS_FILE)  # token, gold, predicted
    with tempfile.TemporaryDirectory(prefix="peftner-reload-") as tmp:
        words = Path(tmp) / "test.conll"
        words.write_text("".join("".join(f"{w[0]}\n" for w in s) + "\n" for s in scored), encoding="utf-8")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "peftner.cli", "predict", "--adapter", str(run / "adapter"),
                               "--input", str(words), "--format", "conll", "--output-format", "conll",
                               "--output", str(Path(tmp) / "predicted.conll")],
                              capture_output=True, text=True, cwd=tmp)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{run}: peftner predict failed: {done.stderr.strip().splitlines()[-1:]}")
        predicted = read_tagged_conll(Path(tmp) / "predicted.conll")
    pairs = [(p[-1], s[2], s[1]) for ps, ss in zip(predicted, scored) for p, s in zip(ps, ss)]
    same_words = [[w[0] for w in s] for s in predicted] == [[w[0] for w in s] for s in scored]
    accuracy = sum(tag == gold for tag, _, gold in pairs) / len(pairs)
    differing = sum(tag != was for tag, was, _ in pairs)
    backbone = (metrics.get("backbone") or {}).get("name") or model_label(metrics["model"])
    return {"run": str(run.relative_to(REPO)) if run.is_relative_to(REPO) else str(run),
            "backbone": backbone, "method": metrics["method"], "test_words": len(pairs),
            "test_accuracy": metrics["test_accuracy"], "predict_accuracy": accuracy, "tags_differing": differing,
            "exact": "yes" if same_words and differing == 0 and accuracy == metrics["test_accuracy"] else "no",
            "predict_seconds": round(seconds, 1), "machine": machine_description()}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/reload_check.py", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders (metrics.json, adapter/)")
    args = parser.parse_args()
    missing = next((r for r in args.runs if not (r / "metrics.json").is_file() or not (r / "adapter").is_dir()), None)
    if missing:
        parser.error(f"{missing}: not a finished run with its adapter (metrics.json and adapter/)")
    rows = {}
    if CHECKS.is_file():
        with open(CHECKS, encoding="utf-8", newline="") as f:
            rows = {row["run"]: row for row in csv.DictReader(f)}
    results = [check(run) for run in args.runs]
    for row in results:
        rows[row["run"]] = row
        print(f"{row['run']}: predict accuracy {row['predict_accuracy']:.6f} vs scored {row['test_accuracy']:.6f}, "
              f"{row['tags_differing']} of {row['test_words']} tags differ: exact {row['exact']}")
    CHECKS.parent.mkdir(parents=True, exist_ok=True)
    with open(CHECKS, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows[key] for key in sorted(rows))
    return 0 if all(row["exact"] == "yes" for row in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
