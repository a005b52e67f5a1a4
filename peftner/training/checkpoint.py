"""Checkpoints that let a killed run continue exactly where it stopped (layout: docs/reliability.md).

A checkpoint is the directory ``OUTPUT_DIR/checkpoints/step-<optimizer steps>/`` holding:

* ``model.safetensors``: the *trainable* parameters (adapter + head; every weight for full
  fine-tuning). Frozen weights are not copied: a resumed run reloads them from the backbone.
* ``best.safetensors``: the trainable parameters of the best dev epoch so far (once there is one).
* ``optimizer.bin``, ``scheduler.bin``, ``random_states_<process>.pkl``: Accelerate's ``save_state``
  (``torch.save``). ``load_state`` reads them back with ``weights_only=True``, which only rebuilds
  tensors, numbers and numpy RNG arrays, so loading a checkpoint never runs code from the file.
* ``allocation.safetensors``: for AdaLoRA, the importance statistics of its rank allocator (the
  rank patterns go into ``progress.json``; see :mod:`peftner.training.rank_allocation`).
* ``progress.json``: where training stands (epoch, batches done in it, the epoch's running loss and
  token count per process), the counters, history and best dev score so far, and the fingerprint of
  the run (settings + data hash) that a resume must match.

Writes are atomic: a checkpoint is written to ``.tmp-step-N`` and renamed once complete, so a kill
in the middle of a save leaves the previous checkpoints intact and the partial one is ignored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from peftner.config import BOOKKEEPING
from peftner.errors import PeftnerError
from peftner.integrity import checksum_problem, os_reason, write_checksums
from peftner.methods.base import trainable_state

logger = logging.getLogger(__name__)

PROGRESS = "progress.json"
BEST = "best.safetensors"
ALLOCATION = "allocation.safetensors"
PREFIX = "step-"
# The only names peftner writes in OUTPUT_DIR/checkpoints/ (a checkpoint and its partial copy): the
# only entries it ever deletes there. Anything else in the folder is the user's and stays.
OWN_ENTRY = re.compile(r"(\.tmp-)?step-\d{8}")
# Settings that may change between a run and its resume without changing what it computes (data
# files are compared by content instead: the hash of the encoded training and dev data).
VOLATILE_SETTINGS = BOOKKEEPING | {"train_file", "validation_file", "test_file"}


def load_trainable_state(model, state: dict[str, torch.Tensor], source: str = "checkpoint"):
    parameters = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != set(parameters):
        raise PeftnerError(f"{source}: its trainable parameters do not match this model's "
                           "(written by another method or model?)")
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value.to(parameters[name].device))


@dataclass
class Position:
    """Where training continues: ``batches_done`` batches of ``epoch`` (1-based) are trained.

    ``accumulators`` holds, per process, the running ``[loss sum, token count]`` of that epoch, so
    the epoch's mean loss comes out the same as without the interruption.
    """

    epoch: int = 1
    batches_done: int = 0
    accumulators: list[list[float]] = field(default_factory=list)
    seconds_in_epoch: float = 0.0

    def running_sums(self, process: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's (loss sum, token count) of the epoch so far, as the loop accumulates them."""
        loss_sum, tokens = self.accumulators[process] if self.accumulators else (0.0, 0)
        return (torch.tensor(loss_sum, dtype=torch.float32, device=device),
                torch.tensor(int(tokens), dtype=torch.long, device=device))


def run_fingerprint(cfg, identity: dict | None, train_features: list[dict], dev_features: list[dict],
                    dev_gold: list[list[str]], world_size: int = 1) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint to reproduce it.

    ``world_size`` (processes): each optimizer step takes one batch per process, so another process
    count changes the steps per epoch, the schedule and the scores."""
    from peftner.config import config_to_dict

    digest = hashlib.sha256()
    for feature in train_features:
        digest.update(json.dumps([feature["input_ids"], feature["labels"]]).encode())
    digest.update(b"|dev|")
    for feature in dev_features:
        digest.update(json.dumps(feature["input_ids"]).encode())
    digest.update(json.dumps(dev_gold).encode())
    settings = {k: v for k, v in config_to_dict(cfg).items() if k not in VOLATILE_SETTINGS}
    return {"settings": settings, **(identity or {}), "world_size": int(world_size),
            "data_sha256": digest.hexdigest()}


def complete_checkpoints(directory: Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (partial writes are ``.tmp-*``: ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if OWN_ENTRY.fullmatch(p.name) and p.name.startswith(PREFIX)
             and (p / PROGRESS).is_file()]
    return sorted(found, key=lambda p: p.name)


def own_entries(directory: Path) -> list[Path]:
    """What peftner wrote in ``directory`` (checkpoints, partial checkpoints): all it may delete there."""
    directory = Path(directory)
    return sorted(p for p in directory.iterdir() if OWN_ENTRY.fullmatch(p.name)) if directory.is_dir() else []


def remove_own_entries(directory: Path) -> None:
    """Delete what peftner wrote in ``directory`` (:func:`own_entries`); the user's files stay."""
    for entry in own_entries(directory):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            diffs += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            diffs.append(f"{prefix}{key}: {old!r} -> {new!r}" if key != "data_sha256"
                         else "training/dev data changed")
    return diffs


class Checkpointer:
    """Writes, rotates and reads the checkpoints of one run (every process calls every method)."""

    def __init__(self, accelerator, directory: Path, every: int, keep: int, fingerprint: dict):
        self.accelerator, self.directory = accelerator, Path(directory)
        self.every, self.keep, self.fingerprint = every, keep, fingerprint
        self.extra = None  # state besides the weights: a RankAllocation (AdaLoRA), or None
        accelerator.register_save_state_pre_hook(self._save_trainable)
        accelerator.register_load_state_pre_hook(self._load_trainable)
        for name in ("accelerate.accelerator", "accelerate.checkpointing"):
            logging.getLogger(name).setLevel(logging.WARNING)  # one line per file saved otherwise

    @property
    def enabled(self) -> bool:
        return self.keep > 0

    def due(self, optimizer_steps: int) -> bool:
        return self.enabled and self.every > 0 and optimizer_steps % self.every == 0

    def checkpoints(self) -> list[Path]:
        return complete_checkpoints(self.directory)

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def start_fresh(self) -> None:
        """A run without --resume starts over: checkpoints of an earlier run in OUTPUT_DIR go (only
        peftner's own ``step-*`` folders: anything else in the folder is the user's and stays)."""
        own = own_entries(self.directory)
        if self.accelerator.is_main_process and own:
            logger.warning("starting from scratch: removing %d earlier checkpoint(s) in %s (pass --resume to "
                           "continue)", len(own), self.directory)
            remove_own_entries(self.directory)
        self.accelerator.wait_for_everyone()

    def restore_latest(self) -> tuple[dict, Position, dict | None] | None:
        """--resume: restore the newest intact checkpoint (see :meth:`load`), or None to start from the beginning.

        A checkpoint whose files fail their checksums (complete but corrupted) is skipped for the one
        before it, with a warning; when none is intact the run stops naming the newest.
        """
        found = self.checkpoints()
        if not found:
            self.accelerator.print(f"--resume: no checkpoint in {self.directory}, starting from the beginning")
            return None
        damaged = []
        for candidate in reversed(found):
            problem = checksum_problem(candidate)
            if problem is None:
                break
            damaged.append(f"{candidate.name}: {problem}")
        else:
            raise PeftnerError(f"{found[-1]}: damaged checkpoint ({damaged[0].split(': ', 1)[1]}) and no intact "
                               "earlier one; drop --resume to start over")
        if damaged:
            logger.warning("skipping damaged checkpoint(s) (%s); resuming from %s instead",
                           "; ".join(damaged), candidate)
        restored = self.load(candidate)
        position = restored[1]
        self.accelerator.print(f"resuming from {candidate}: epoch {position.epoch}, "
                               f"{position.batches_done} batches done")
        return restored

    # Accelerate hooks: only the trainable parameters go into (and come out of) model.safetensors.
    def _save_trainable(self, models, weights, output_dir):
        weights[:] = [trainable_state(self.accelerator.unwrap_model(m)) for m in models]

    def _load_trainable(self, models, input_dir):
        from safetensors.torch import load_file

        for i, model in enumerate(models):
            path = Path(input_dir) / ("model.safetensors" if i == 0 else f"model_{i}.safetensors")
            load_trainable_state(self.accelerator.unwrap_model(model), load_file(path), str(path))
        models.clear()  # tells Accelerate these are loaded (it would expect the full state dict)

    def save(self, model, result, position: Position, best_state: dict | None,
             loss_sum=None, tokens=None) -> float:
        """Write a checkpoint and drop the oldest beyond ``keep``; returns the seconds it took."""
        from safetensors.torch import save_file

        started = time.perf_counter()
        where = f"optimizer step {result.optimizer_steps}"
        bad = [n for n, p in self.accelerator.unwrap_model(model).named_parameters()
               if p.requires_grad and not torch.isfinite(p).all()]
        if bad:
            raise PeftnerError(self.stop_message(f"weights became non-finite ({bad[0]}) at {where}"))
        if position.batches_done:  # mid-epoch: keep the epoch's running sums of every process
            sums = torch.stack([loss_sum.detach().double(), tokens.detach().double()]).unsqueeze(0)
            position.accumulators = self.accelerator.gather(sums).tolist()
        name = f"{PREFIX}{result.optimizer_steps:08d}"
        temporary, final = self.directory / f".tmp-{name}", self.directory / name
        if self.accelerator.is_main_process:  # leftovers of saves (or deletions) that were killed midway
            complete = set(self.checkpoints())
            for partial in own_entries(self.directory):
                if partial.name.startswith(".tmp-") or partial not in complete:
                    shutil.rmtree(partial, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        try:
            self.accelerator.save_state(str(temporary), safe_serialization=True)
            self.accelerator.wait_for_everyone()  # every process's RNG file is in before the rename
            if self.accelerator.is_main_process:
                if best_state is not None:
                    save_file(best_state, temporary / BEST)
                progress = {"fingerprint": self.fingerprint, "position": dataclasses.asdict(position),
                            "result": dataclasses.asdict(result)}
                if self.extra is not None:
                    tensors, progress["extra"] = self.extra.state()
                    save_file(tensors, temporary / ALLOCATION)
                (temporary / PROGRESS).write_text(json.dumps(progress, indent=1), encoding="utf-8")
                write_checksums(temporary)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(temporary, final)
                for old in self.checkpoints()[:-self.keep]:
                    doomed = old.with_name(f".tmp-{old.name}")  # a kill while deleting leaves a .tmp- leftover,
                    os.replace(old, doomed)                      # never a step- folder without its progress
                    shutil.rmtree(doomed, ignore_errors=True)
        except OSError as err:  # disk full, quota, read-only: the earlier checkpoints stay as they were
            shutil.rmtree(temporary, ignore_errors=True)
            raise PeftnerError(self.stop_message(f"could not write checkpoint {final} ({os_reason(err)})",
                                                 "free some space (or pass --keep-checkpoints 0) and "
                                                 "resume with --resume")) from None
        self.accelerator.wait_for_everyone()
        return time.perf_counter() - started

    def load(self, path: Path) -> tuple[dict, Position, dict | None]:
        """Restore the prepared model, optimizer, scheduler and RNG; returns (result fields, position, best)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            progress = json.loads((path / PROGRESS).read_text(encoding="utf-8"))
            saved_fingerprint, position = progress["fingerprint"], Position(**progress["position"])
            saved_result = progress["result"]
            if not isinstance(saved_fingerprint, dict) or not isinstance(saved_result, dict):
                raise ValueError("fingerprint and result must be objects")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise PeftnerError(f"{path}: unreadable checkpoint ({err})") from None
        saved_world = saved_fingerprint.get("world_size")  # absent: written before it was recorded
        if saved_world is not None and saved_world != self.fingerprint.get("world_size"):
            raise PeftnerError(
                f"{path}: written by a run of {saved_world} process(es), this one has "
                f"{self.fingerprint.get('world_size')}: the steps per epoch and the schedule would differ; resume "
                f"with {saved_world} process(es) (accelerate launch --num_processes {saved_world} ...), or drop "
                "--resume to start over")
        current = self.fingerprint if saved_world is not None else \
            {k: v for k, v in self.fingerprint.items() if k != "world_size"}
        diffs = _differences(saved_fingerprint, current)
        if diffs:
            raise PeftnerError(f"{path}: written with other settings ({'; '.join(diffs[:3])}); "
                               "resume with the same flags and data, or drop --resume to start over")
        try:
            self.accelerator.load_state(str(path))  # weights_only=True for every torch.load it makes
            best = load_file(path / BEST) if (path / BEST).is_file() else None
            if self.extra is not None:
                if not (path / ALLOCATION).is_file() or "extra" not in progress:
                    raise PeftnerError(f"{path}: unreadable checkpoint (the AdaLoRA allocator state is missing)")
                self.extra.load_state(load_file(path / ALLOCATION), progress["extra"])
        except (SafetensorError, RuntimeError, OSError, EOFError, ValueError, KeyError) as err:
            # a checkpoint written before checksums existed, damaged: its files cannot be read back
            raise PeftnerError(f"{path}: damaged checkpoint ({str(err).strip().splitlines()[0][:200]}); "
                               "drop --resume to start over") from None
        return saved_result, position, best

    def stop_message(self, what: str, advice: str = "lower --learning-rate (or use --mixed-precision no) "
                                                     "and train again") -> str:
        latest = self.latest()
        kept = (f"the last good checkpoint is kept in {latest}" if latest
                else "no checkpoint had been written yet")
        return f"training stopped: {what}; {kept}; {advice}"
