"""Parameters-vs-F1 comparison of methods x seeds; also `peftner compare`.

    python benchmarks/compare.py                                  # every method, 3 seeds, embedded defaults
    python benchmarks/compare.py --methods lora,full --seeds 1 --max-train-samples 200 --epochs 1
    python benchmarks/compare.py --train-sizes 100,300,1000,all --steps 600   # data efficiency, equal steps
"""

from peftner.benchmark import cli

if __name__ == "__main__":
    cli()
