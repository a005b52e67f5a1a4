"""Foundation check: peftner full fine-tuning (default hyperparameters) vs the plain Trainer recipe.

Same backbone (embedded all-MiniLM-L6-v2), same WNUT-16 split, same epochs, same seed; peftner's
metric for both. Writes benchmarks/results/trainer_baseline/result.json and prints both F1 scores.

    python benchmarks/trainer_baseline.py            # defaults: 5 epochs, seed 42
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hf_trainer_recipe import run_trainer  # noqa: E402

from peftner.config import default_model, parse_args  # noqa: E402
from peftner.data import load_corpus  # noqa: E402
from peftner.methods import get_method  # noqa: E402
from peftner.recipe import run  # noqa: E402
from peftner.integrity import write_json_atomic
from peftner.report import library_versions, machine_description  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None, help="default: peftner's default epochs")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "trainer_baseline" / "result.json"))
    args = parser.parse_args(argv)

    full = get_method("full")
    with tempfile.TemporaryDirectory() as tmp:
        cfg, method_cfg = parse_args(full, ["--seed", str(args.seed), "--output-dir", f"{tmp}/peftner"]
                                     + (["--epochs", str(args.epochs)] if args.epochs else []))
        peftner_metrics = run(full, cfg, method_cfg, command="benchmarks/trainer_baseline.py")
        corpus = load_corpus(cfg.dataset, seed=cfg.seed)
        trainer = run_trainer(corpus, default_model(), f"{tmp}/trainer", epochs=cfg.epochs, seed=cfg.seed)
    result = {
        "command": "python benchmarks/trainer_baseline.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine_description(),
        "dataset": "wnut16", "epochs": cfg.epochs, "seed": cfg.seed,
        "peftner_full": {k: peftner_metrics[k] for k in ("test_f1", "test_precision", "test_recall", "best_dev_f1",
                                                         "train_seconds", "train_tokens_per_second")}
                        | {"learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size},
        "transformers_trainer": trainer,
        "versions": library_versions(),
    }
    result["peftner_minus_trainer_f1"] = result["peftner_full"]["test_f1"] - trainer["test_f1"]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, result)
    print(f"peftner full fine-tuning test F1 {result['peftner_full']['test_f1']:.4f} | "
          f"Transformers Trainer test F1 {trainer['test_f1']:.4f} | "
          f"difference {result['peftner_minus_trainer_f1']:+.4f}  ({cfg.epochs} epochs, seed {cfg.seed})")
    return result


if __name__ == "__main__":
    main()
