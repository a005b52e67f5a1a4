"""Run a recipe under `accelerate launch` and dump each process's final trainable weights' checksum.

Usage: accelerate launch ... train_and_dump.py METHOD DUMP_DIR -- <recipe flags>
"""

import hashlib
import sys
from pathlib import Path

import torch

import peftner.training.loop as loop
from peftner.recipe import main

method, dump_dir = sys.argv[1], Path(sys.argv[2])
captured = {}
original_train = loop.train


def capturing_train(*args, **kwargs):
    model, result = original_train(*args, **kwargs)
    captured["model"] = model
    return model, result


loop.train = capturing_train
main(method, sys.argv[4:])

from accelerate import PartialState  # noqa: E402

state = PartialState()
digest = hashlib.sha256()
for name, parameter in sorted(captured["model"].named_parameters()):
    if parameter.requires_grad:
        digest.update(name.encode())
        digest.update(parameter.detach().to(torch.float32).cpu().numpy().tobytes())
(dump_dir / f"weights-rank{state.process_index}.sha256").write_text(digest.hexdigest())
