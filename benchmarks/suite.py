"""The suite of backbones x corpora x methods x seeds (`peftner suite`), writing into this repository's
benchmarks/results/suite/ (`peftner suite` itself writes to ./results/suite).

    python benchmarks/suite.py benchmarks/suite.yaml                  # run (start it N times: N workers)
    python benchmarks/suite.py benchmarks/suite.yaml --only minilm    # one backbone's cells
    python benchmarks/suite.py benchmarks/suite.yaml --report-only    # rewrite the report from the runs
"""

import sys
from pathlib import Path

from peftner.errors import INTERRUPTED_STATUS, OneLineParser, PeftnerError, interrupted_line
from peftner.experiments.suite import suite, suite_arguments

if __name__ == "__main__":
    parser = OneLineParser(prog="python benchmarks/suite.py", description=__doc__.splitlines()[0])
    suite_arguments(parser, results_dir=str(Path(__file__).resolve().parent / "results" / "suite"))
    try:
        suite(parser.parse_args(), sys.argv[1:], prog="python benchmarks/suite.py")
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt as err:
        print(interrupted_line(err, "rerun the same command to resume"), file=sys.stderr)
        raise SystemExit(INTERRUPTED_STATUS) from None
