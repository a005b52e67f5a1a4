"""The one training loop every method uses, on Accelerate.

:func:`train` reads top to bottom as its stages: :func:`_prepare` (loaders, AdamW, warm-up + linear
decay, ``accelerator.prepare``) → :func:`_start_or_resume` (checkpoint bookkeeping) → for each
epoch: :func:`_train_epoch` (gradient accumulation, clipping; a checkpoint every N optimizer steps)
→ :func:`_evaluate_epoch` (dev score, keep the best dev state) → epoch-end checkpoint → restore the
best state at the end. Evaluation gathers predictions from every process with
``gather_for_metrics`` so each example is scored exactly once whatever the number of processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from peftner.data.alignment import WordSlots
from peftner.data.collator import MODEL_INPUTS, LengthGroupedBatchSampler, PaddingCollator, length_sorted_batches
from peftner.config import OPTIMIZER_KERNELS
from peftner.errors import PeftnerError
from peftner.metrics import score
from peftner.training.callbacks import notify
from peftner.training.checkpoint import (Checkpointer, Position, load_trainable_state, run_fingerprint,
                                         trainable_state)
from peftner.training.rank_allocation import RankAllocation


class FixedBatches(torch.utils.data.Sampler):
    """A fixed list of index batches (evaluation: longest first)."""

    def __init__(self, batches: list[list[int]], batch_size: int):
        self.batches, self.batch_size = batches, batch_size

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


@dataclass
class EvalSet:
    """Encoded features of one split plus the word-level gold tags to score against."""

    features: list[dict]
    gold: list[list[str]]

    @property
    def num_words(self) -> list[int]:
        return [len(g) for g in self.gold]


@dataclass
class Scorer:
    """How predicted label ids become scores: the label names, the metric and the F1 scheme rules."""

    id2label: dict
    metric: str
    f1_scheme: str | None = None  # see peftner.metrics.score
    scheme: str | None = None  # the labels' scheme: BILOU tags are scored as IOBES

    def __call__(self, ids: list[list[int]], gold: list[list[str]]) -> tuple[dict, list[list[str]]]:
        predicted = [[self.id2label[i] for i in row] for row in ids]
        return score(predicted, gold, metric=self.metric, f1_scheme=self.f1_scheme, tag_scheme=self.scheme), predicted


@dataclass
class TrainResult:
    best_dev_f1: float
    best_epoch: int
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens: int = 0
    optimizer_steps: int = 0


def make_eval_loader(eval_set: EvalSet, batch_size: int, collator, num_workers: int = 0) -> DataLoader:
    batches = length_sorted_batches([len(f["input_ids"]) for f in eval_set.features], batch_size)
    return DataLoader(eval_set.features, batch_sampler=FixedBatches(batches, batch_size),
                      collate_fn=collator, num_workers=num_workers)


@torch.inference_mode()
def predict_words(model, loader, accelerator, num_words: list[int]) -> list[list[int]]:
    """Label ids for every word of every sentence, gathered over all processes."""
    model.eval()
    slots = WordSlots(num_words)
    word_ids = torch.full((slots.total,), -1, dtype=torch.long)
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        preds = logits.argmax(dim=-1)
        preds = accelerator.pad_across_processes(preds, dim=1, pad_index=0)
        words = accelerator.pad_across_processes(batch["word_index"], dim=1, pad_index=-1)
        preds, words, ids = (t.cpu() for t in accelerator.gather_for_metrics((preds, words, batch["example_id"])))
        mask, at = slots.at(ids, words)
        word_ids[at] = preds[mask]
    missing = int((word_ids < 0).sum())
    if missing:
        raise RuntimeError(f"{missing} words received no prediction (alignment bug)")
    return slots.split(word_ids.tolist())


def evaluate_split(model, loader, accelerator, eval_set: EvalSet, scorer: Scorer) -> tuple[dict, list[list[str]]]:
    """Scores and predicted tags of one split (every process gets the same)."""
    return scorer(predict_words(model, loader, accelerator, eval_set.num_words), eval_set.gold)


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name or "norm." in name.lower()


def build_optimizer(model, learning_rate: float, weight_decay: float, kernel: str = "auto",
                    device_type: str = "cpu"):
    """AdamW with decoupled weight decay on weights only (not biases or norms).

    ``kernel``: "fused" runs one kernel per step for all parameters (the fastest, also on CPU);
    "foreach" batches the element-wise ops. They agree to the last bits only, so "auto" keeps
    "foreach" on CPU, where peftner's published results were made, and uses "fused" on GPU.
    """
    if kernel not in OPTIMIZER_KERNELS:
        raise PeftnerError(f"optimizer_kernel must be one of {', '.join(OPTIMIZER_KERNELS)}, got {kernel!r}")
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if _no_decay(name) else decay).append(parameter)
    if not decay and not no_decay:
        raise PeftnerError("the method left no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = kernel == "fused" or (kernel == "auto" and device_type == "cuda")
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=learning_rate, **kwargs)


def compiled(model):
    """``torch.compile`` for the training step only, with eager-identical dropout masks.

    Evaluation, checkpoints and saving keep using the plain module (same parameters), so nothing
    downstream sees a compiled wrapper. Inductor draws its own random numbers by default, which
    would change dropout and hence the scores; ``fallback_random`` keeps torch's generator, so a
    compiled run matches an eager one to float rounding. Shapes are dynamic (every batch has its
    own length), so one compilation serves the whole run.
    """
    import torch._inductor.config

    torch._inductor.config.fallback_random = True
    return torch.compile(model, dynamic=True)


def _finite_everywhere(accelerator, loss) -> bool:
    """Whether the loss is finite on every process (all must stop together, or the rest would hang)."""
    bad = (~torch.isfinite(loss.detach())).float()
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    return not bad.item()


@dataclass
class _Prepared:
    """What :func:`_prepare` builds: the prepared model, optimizer, scheduler and loaders."""

    model: Any
    train_step_model: Any  # the model, or its compiled training step (--compile)
    optimizer: Any
    scheduler: Any
    train_loader: Any
    sampler: LengthGroupedBatchSampler
    dev_loader: Any
    epochs: int  # epochs begun: --epochs, or as many as --max-steps takes
    total_steps: int  # optimizer steps of the whole run (the schedule's length)
    allocation: RankAllocation | None = None  # AdaLoRA's rank allocation, stepped after each optimizer step


@dataclass
class _State:
    """Where training stands: counters and history, the position to continue from, the best dev state."""

    result: TrainResult
    position: Position
    best_state: dict | None = None


def _prepare(model, accelerator, train_features: list[dict], dev_set: EvalSet, cfg, pad_token_id: int) -> _Prepared:
    collator = PaddingCollator(pad_token_id)
    # The batch order depends only on seed + epoch (mega-batches of 1 batch = plain shuffling), and
    # the loader draws from its own generator, not the global one dropout uses: so a resumed run
    # sees the same batches with the same dropout masks.
    sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in train_features], cfg.batch_size,
                                        seed=cfg.seed, mega_batch_mult=50 if cfg.group_by_length else 1)
    train_loader = DataLoader(train_features, batch_sampler=sampler, collate_fn=collator,
                              num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    dev_loader = make_eval_loader(dev_set, cfg.eval_batch_size, collator, cfg.num_workers)

    steps_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
    max_steps = getattr(cfg, "max_steps", None)
    epochs = math.ceil(max_steps / steps_per_epoch) if max_steps else cfg.epochs
    total_steps = max_steps or steps_per_epoch * epochs
    optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay, cfg.optimizer_kernel,
                                accelerator.device.type)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, scheduler)
    return _Prepared(model, compiled(model) if cfg.compile else model, optimizer, scheduler, train_loader,
                     sampler, dev_loader, epochs, total_steps,
                     RankAllocation.of(accelerator.unwrap_model(model), total_steps))


def _start_or_resume(checkpoints: Checkpointer, resume: bool) -> _State:
    """A fresh state, or (``--resume``) the one of the latest checkpoint with its weights restored."""
    restored = checkpoints.restore_latest() if resume else checkpoints.start_fresh()
    if not restored:
        return _State(TrainResult(best_dev_f1=-1.0, best_epoch=0), Position())
    saved, position, best_state = restored
    return _State(TrainResult(**saved), position, best_state)


def _optimizer_step(run: _Prepared, accelerator, batch, cfg, state: _State, where: str, checkpoints, callbacks):
    """One micro-batch: forward, backward, and (at accumulation boundaries) clip + step; returns the loss."""
    model = run.model
    with accelerator.accumulate(model):
        loss = run.train_step_model(**{k: batch[k] for k in MODEL_INPUTS}).loss
        if not _finite_everywhere(accelerator, loss):
            raise PeftnerError(checkpoints.stop_message(f"loss became {loss.item()} at {where}"))
        accelerator.backward(loss)
        grad_norm = None
        if accelerator.sync_gradients and cfg.max_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        lr = run.scheduler.get_last_lr()[0]
        run.optimizer.step()
        run.scheduler.step()
        state.result.optimizer_steps += int(accelerator.sync_gradients)
        if run.allocation is not None and accelerator.sync_gradients:
            run.allocation.step(state.result.optimizer_steps)  # reads the gradients: before zero_grad
        run.optimizer.zero_grad(set_to_none=True)
    if callbacks and accelerator.sync_gradients:
        notify(callbacks, "on_optimizer_step", state.result.optimizer_steps, loss.item(), lr,
               None if grad_norm is None else float(grad_norm))
    return loss


def _train_epoch(run: _Prepared, accelerator, state: _State, epoch: int, cfg, checkpoints: Checkpointer,
                 progress, callbacks, evaluate) -> float:
    """Train one epoch (from where a resumed checkpoint stopped); returns its mean training loss.

    Stops early when the run reaches ``--max-steps``; every ``--eval-steps`` optimizer steps it calls
    ``evaluate(epoch, None, training seconds so far)`` (evaluation time is not training time).
    """
    resumed = state.position if epoch == state.position.epoch else Position(epoch)
    run.model.train()
    started = time.perf_counter() - resumed.seconds_in_epoch
    loss_sum, tokens = resumed.running_sums(accelerator.process_index, accelerator.device)
    loader = accelerator.skip_first_batches(run.train_loader, resumed.batches_done) if resumed.batches_done \
        else run.train_loader
    loader.set_epoch(epoch)  # the batches of an epoch are fixed by seed + epoch
    run.sampler.set_epoch(epoch)
    max_steps, eval_steps = getattr(cfg, "max_steps", None), getattr(cfg, "eval_steps", None)
    batch_number = resumed.batches_done
    for batch_number, batch in enumerate(loader, start=resumed.batches_done + 1):
        loss = _optimizer_step(run, accelerator, batch, cfg, state, f"epoch {epoch}, batch {batch_number}",
                               checkpoints, callbacks)
        tokens += batch["attention_mask"].sum()
        loss_sum += loss.detach()
        progress.update(1)
        progress.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
        steps = state.result.optimizer_steps
        finished = bool(max_steps) and steps >= max_steps
        mid_epoch = accelerator.sync_gradients and batch_number < len(run.train_loader) and not finished
        if mid_epoch and eval_steps and steps % eval_steps == 0:  # the epoch end evaluates anyway
            paused = time.perf_counter()
            evaluate(epoch, None, state.result.train_seconds + paused - started)
            run.model.train()
            started += time.perf_counter() - paused
        if mid_epoch and checkpoints.due(steps):  # the epoch-end checkpoint follows anyway
            here = Position(epoch, batch_number, seconds_in_epoch=time.perf_counter() - started)
            started += checkpoints.save(run.model, state.result, here, state.best_state, loss_sum, tokens)
        if finished:
            break
    state.result.train_seconds += time.perf_counter() - started
    state.result.train_tokens += int(accelerator.reduce(tokens, reduction="sum").item())
    return accelerator.reduce(loss_sum, reduction="mean").item() / max(1, batch_number)


def _evaluate_epoch(run: _Prepared, accelerator, state: _State, epoch: int, mean_loss: float | None,
                    dev_set: EvalSet, scorer: Scorer) -> tuple[dict, bool]:
    """Score dev, record it (``mean_loss`` None: mid-epoch), keep the state if it is the best so far;
    returns (scores, improved)."""
    dev_scores, _ = evaluate_split(run.model, run.dev_loader, accelerator, dev_set, scorer)
    state.result.history.append({"epoch": epoch, "step": state.result.optimizer_steps, "train_loss": mean_loss,
                                 "dev_f1": dev_scores["f1"]})
    improved = dev_scores["f1"] > state.result.best_dev_f1
    if improved:
        state.result.best_dev_f1, state.result.best_epoch = dev_scores["f1"], epoch
        state.best_state = trainable_state(accelerator.unwrap_model(run.model))
        if run.allocation is not None:
            run.allocation.keep_best()
    return dev_scores, improved


def train(model, accelerator, train_features: list[dict], dev_set: EvalSet, scorer: Scorer, cfg,
          pad_token_id: int, identity: dict | None = None, callbacks=()) -> tuple[object, TrainResult]:
    """Train ``model`` on ``train_features``; returns the prepared model holding the best dev state.

    Checkpoints every ``cfg.checkpoint_every`` optimizer steps and at each epoch end; with
    ``cfg.resume`` it continues from the latest one and reproduces the uninterrupted run exactly.
    ``identity`` (method name and settings) must match for a checkpoint to be resumed.
    ``cfg.max_steps`` fixes the optimizer steps instead of the epochs (equal budgets for any data size);
    ``cfg.eval_steps`` also scores dev every N steps, not only at epoch ends.
    ``callbacks``: objects with any of the hooks of :class:`peftner.training.callbacks.Callback`.
    """
    run = _prepare(model, accelerator, train_features, dev_set, cfg, pad_token_id)
    checkpoints = Checkpointer(accelerator, Path(cfg.output_dir) / "checkpoints", cfg.checkpoint_every,
                               cfg.keep_checkpoints, run_fingerprint(cfg, identity, train_features,
                                                                     dev_set.features, dev_set.gold,
                                                                     accelerator.num_processes))
    checkpoints.extra = run.allocation  # its statistics and rank patterns travel with the checkpoints
    state = _start_or_resume(checkpoints, cfg.resume)
    batches = len(run.train_loader)
    by_steps = bool(getattr(cfg, "max_steps", None) or getattr(cfg, "eval_steps", None))

    def evaluate(epoch: int, mean_loss: float | None, train_seconds: float) -> dict:
        dev_scores, improved = _evaluate_epoch(run, accelerator, state, epoch, mean_loss, dev_set, scorer)
        if accelerator.is_main_process:
            step = f", step {state.result.optimizer_steps}/{run.total_steps}" if by_steps else ""
            loss = f"train loss {mean_loss:.4f}  " if mean_loss is not None else ""
            progress.write(f"epoch {epoch}/{run.epochs}{step}: {loss}dev {scorer.metric} "
                           f"{dev_scores['f1']:.4f}{'  (best)' if improved else ''}")
        # Hooks also get the training time so far (time to quality); the history keeps only what is
        # computed, so a resumed run's history equals the uninterrupted one's.
        notify(callbacks, "on_evaluate", {**state.result.history[-1], "train_seconds": train_seconds})
        return dev_scores

    with tqdm(total=run.epochs * batches, desc="training", unit="batch",
              initial=(state.position.epoch - 1) * batches + state.position.batches_done,
              disable=not accelerator.is_local_main_process, dynamic_ncols=True) as progress:
        for epoch in range(state.position.epoch, run.epochs + 1):
            mean_loss = _train_epoch(run, accelerator, state, epoch, cfg, checkpoints, progress, callbacks, evaluate)
            dev_scores = evaluate(epoch, mean_loss, state.result.train_seconds)
            if checkpoints.enabled:
                checkpoints.save(run.model, state.result, Position(epoch + 1), state.best_state)
            if any(notify(callbacks, "on_epoch_end", epoch, dev_scores)):
                break
            if getattr(cfg, "max_steps", None) and state.result.optimizer_steps >= cfg.max_steps:
                break
    if state.best_state is not None:
        load_trainable_state(accelerator.unwrap_model(run.model), state.best_state)
        if run.allocation is not None:
            run.allocation.restore_best()
    notify(callbacks, "on_train_end", state.result)
    return run.model, state.result
