"""Parameters-vs-F1 comparison of methods x seeds: `peftner compare` writing into this repository's
benchmarks/results/ (the committed results; `peftner compare` itself writes to ./results).

    python benchmarks/compare.py                                  # every method, 3 seeds, embedded defaults
    python benchmarks/compare.py --methods lora,full --seeds 1 --max-train-samples 200 --epochs 1
    python benchmarks/compare.py --train-sizes 100,300,1000,all --steps 600   # data efficiency, equal steps
"""

from pathlib import Path

from peftner.experiments.compare import cli

if __name__ == "__main__":
    cli(results_dir=str(Path(__file__).resolve().parent / "results"), prog="python benchmarks/compare.py")
