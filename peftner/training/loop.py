"""The one training loop every method uses, on Accelerate.

:func:`train` reads top to bottom as its stages: :func:`_prepare` (loaders, AdamW, warm-up + linear
decay, ``accelerator.prepare``, checkpoints: one :class:`_Run` that every stage takes) →
:func:`_start_or_resume` → for each epoch: :func:`_train_epoch` (gradient accumulation, clipping; a
checkpoint every N optimizer steps) → :func:`_evaluate` (dev score, keep the best dev state) →
epoch-end checkpoint → restore the best state at the end. Evaluation gathers predictions from every process with
``gather_for_metrics`` so each example is scored exactly once whatever the number of processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from peftner.data.alignment import WordSlots
from peftner.data.collator import MODEL_INPUTS, LengthGroupedBatchSampler, PaddingCollator, length_sorted_batches
from peftner.config import OPTIMIZER_KERNELS
from peftner.errors import PeftnerError, stop_if_signalled
from peftner.metrics import score
from peftner.training.callbacks import notify
from peftner.methods.base import trainable_state
from peftner.training.checkpoint import Checkpointer, Position, load_trainable_state, run_fingerprint
from peftner.training.head_standardization import HeadStandardization, standardize_head
from peftner.training.rank_allocation import RankAllocation

if TYPE_CHECKING:
    from peftner.config import TrainConfig


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
    head_standardization: dict | None = None  # the head input's measured mean share; whether the head was standardised


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
        stop_if_signalled()
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
class _Run:
    """One training run's state, built once by :func:`_prepare` and passed to every stage: the prepared
    model, optimizer, schedule and loaders, the checkpoints and hooks, and where training stands."""

    accelerator: Any
    cfg: TrainConfig
    model: Any
    train_step_model: Any  # the model, or its compiled training step (--compile)
    optimizer: Any
    scheduler: Any
    train_loader: Any
    sampler: LengthGroupedBatchSampler
    dev_loader: Any
    dev_set: EvalSet
    scorer: Scorer
    epochs: int  # epochs begun: --epochs, or as many as --max-steps takes
    total_steps: int  # optimizer steps of the whole run (the schedule's length)
    checkpoints: Checkpointer
    callbacks: tuple = ()
    allocation: RankAllocation | None = None  # AdaLoRA's rank allocation, stepped after each optimizer step
    standardization: HeadStandardization | None = None  # --standardize-head: updates as if the head input were standardised
    # where training stands: counters and history, the position to continue from, the best dev state
    result: TrainResult = field(default_factory=lambda: TrainResult(best_dev_f1=-1.0, best_epoch=0))
    position: Position = field(default_factory=Position)
    best_state: dict | None = None
    progress: Any = None  # the tqdm bar, while training

    @property
    def by_steps(self) -> bool:
        return bool(self.cfg.max_steps or self.cfg.eval_steps)


def _initialization_batches(model, train_features: list[dict], collator, cfg, accelerator):
    """One epoch of training batches on the run's device, in the first epoch's order, for
    ``Method.initialize``. Every process reads the same batches, so all compute the same start."""
    if not getattr(model, "hf_device_map", None):  # quantized weights were placed when loaded
        model.to(accelerator.device)
    sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in train_features], cfg.batch_size,
                                        seed=cfg.seed, mega_batch_mult=50 if cfg.group_by_length else 1)
    sampler.set_epoch(1)
    for indices in sampler:
        batch = collator([train_features[i] for i in indices])
        yield {k: v.to(accelerator.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _prepare(model, accelerator, train_features: list[dict], dev_set: EvalSet, scorer: Scorer, cfg: TrainConfig,
             pad_token_id: int, identity: dict | None, callbacks, initialize=None, fresh_head: bool = True) -> _Run:
    """Loaders, ``initialize`` (a method's data pass), AdamW, warm-up + linear decay,
    ``accelerator.prepare``, and the checkpoint bookkeeping."""
    collator = PaddingCollator(pad_token_id)
    # The batch order depends only on seed + epoch (mega-batches of 1 batch = plain shuffling), and
    # the loader draws from its own generator, not the global one dropout uses: so a resumed run
    # sees the same batches with the same dropout masks.
    sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in train_features], cfg.batch_size,
                                        seed=cfg.seed, mega_batch_mult=50 if cfg.group_by_length else 1)
    train_loader = DataLoader(train_features, batch_sampler=sampler, collate_fn=collator,
                              num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed))
    dev_loader = make_eval_loader(dev_set, cfg.eval_batch_size, collator, cfg.num_workers)

    if initialize is not None:  # a data-driven initialisation: before the optimizer sees the parameters
        model = initialize(model, _initialization_batches(model, train_features, collator, cfg, accelerator))
    standardization, head_standardization = standardize_head(
        cfg.standardize_head, model, _initialization_batches(model, train_features, collator, cfg, accelerator),
        fresh_head, accelerator.print)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
    epochs = math.ceil(cfg.max_steps / steps_per_epoch) if cfg.max_steps else cfg.epochs
    total_steps = cfg.max_steps or steps_per_epoch * epochs
    optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay, cfg.optimizer_kernel,
                                accelerator.device.type)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, scheduler)
    checkpoints = Checkpointer(accelerator, Path(cfg.output_dir) / "checkpoints", cfg.checkpoint_every,
                               cfg.keep_checkpoints, run_fingerprint(cfg, identity, train_features,
                                                                     dev_set.features, dev_set.gold,
                                                                     accelerator.num_processes))
    allocation = RankAllocation.of(accelerator.unwrap_model(model), total_steps)
    checkpoints.extra = allocation  # its statistics and rank patterns travel with the checkpoints
    run = _Run(accelerator, cfg, model, compiled(model) if cfg.compile else model, optimizer, scheduler,
               train_loader, sampler, dev_loader, dev_set, scorer, epochs, total_steps, checkpoints,
               tuple(callbacks), allocation, standardization)
    run.result.head_standardization = head_standardization
    return run


def _start_or_resume(run: _Run) -> None:
    """A fresh state, or (``--resume``) the one of the latest checkpoint with its weights restored."""
    restored = run.checkpoints.restore_latest() if run.cfg.resume else run.checkpoints.start_fresh()
    if restored:
        saved, run.position, run.best_state = restored
        run.result = TrainResult(**{**saved, "head_standardization": run.result.head_standardization})  # measured again


def _optimizer_step(run: _Run, batch, where: str):
    """One micro-batch: forward, backward, and (at accumulation boundaries) clip + step; returns the loss
    and whether a callback asked to end the epoch after this step."""
    accelerator, model = run.accelerator, run.model
    with accelerator.accumulate(model):
        loss = run.train_step_model(**{k: batch[k] for k in MODEL_INPUTS}).loss
        if not _finite_everywhere(accelerator, loss):
            raise PeftnerError(run.checkpoints.stop_message(f"loss became {loss.item()} at {where}"))
        accelerator.backward(loss)
        standardized = run.standardization is not None and accelerator.sync_gradients
        if standardized:
            run.standardization.before_step()
        grad_norm = None
        if accelerator.sync_gradients and run.cfg.max_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), run.cfg.max_grad_norm)
        lr = run.scheduler.get_last_lr()[0]
        run.optimizer.step()
        if standardized:
            run.standardization.after_step()
        run.scheduler.step()
        run.result.optimizer_steps += int(accelerator.sync_gradients)
        if run.allocation is not None and accelerator.sync_gradients:
            run.allocation.step(run.result.optimizer_steps)  # reads the gradients: before zero_grad
        run.optimizer.zero_grad(set_to_none=True)
    stop = False
    if run.callbacks and accelerator.sync_gradients:
        stop = any(notify(run.callbacks, "on_optimizer_step", run.result.optimizer_steps, loss.item(), lr,
                          None if grad_norm is None else float(grad_norm)))
    return loss, stop


def _train_epoch(run: _Run, epoch: int) -> float:
    """Train one epoch (from where a resumed checkpoint stopped); returns its mean training loss.

    Stops early when the run reaches ``--max-steps`` or a callback ends the epoch; every ``--eval-steps`` optimizer steps it
    scores dev (evaluation time is not training time).
    """
    accelerator, cfg = run.accelerator, run.cfg
    resumed = run.position if epoch == run.position.epoch else Position(epoch)
    run.model.train()
    started = time.perf_counter() - resumed.seconds_in_epoch
    loss_sum, tokens = resumed.running_sums(accelerator.process_index, accelerator.device)
    loader = accelerator.skip_first_batches(run.train_loader, resumed.batches_done) if resumed.batches_done \
        else run.train_loader
    loader.set_epoch(epoch)  # the batches of an epoch are fixed by seed + epoch
    run.sampler.set_epoch(epoch)
    batch_number = resumed.batches_done
    for batch_number, batch in enumerate(loader, start=resumed.batches_done + 1):
        loss, stop = _optimizer_step(run, batch, f"epoch {epoch}, batch {batch_number}")
        stop_if_signalled()
        tokens += batch["attention_mask"].sum()
        loss_sum += loss.detach()
        run.progress.update(1)
        run.progress.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
        steps = run.result.optimizer_steps
        finished = stop or (bool(cfg.max_steps) and steps >= cfg.max_steps)
        mid_epoch = accelerator.sync_gradients and batch_number < len(run.train_loader) and not finished
        if mid_epoch and cfg.eval_steps and steps % cfg.eval_steps == 0:  # the epoch end evaluates anyway
            paused = time.perf_counter()
            _evaluate(run, epoch, None, run.result.train_seconds + paused - started)
            run.model.train()
            started += time.perf_counter() - paused
        if mid_epoch and run.checkpoints.due(steps):  # the epoch-end checkpoint follows anyway
            here = Position(epoch, batch_number, seconds_in_epoch=time.perf_counter() - started)
            started += run.checkpoints.save(run.model, run.result, here, run.best_state, loss_sum, tokens)
        if finished:
            break
    run.result.train_seconds += time.perf_counter() - started
    run.result.train_tokens += int(accelerator.reduce(tokens, reduction="sum").item())
    return accelerator.reduce(loss_sum, reduction="mean").item() / max(1, batch_number)


def _evaluate(run: _Run, epoch: int, mean_loss: float | None, train_seconds: float) -> dict:
    """Score dev, record it (``mean_loss`` None: mid-epoch), keep the state if it is the best so far,
    report it; returns the scores. Hooks also get the training time so far (time to quality); the
    history keeps only what is computed, so a resumed run's history equals the uninterrupted one's."""
    accelerator = run.accelerator
    dev_scores, _ = evaluate_split(run.model, run.dev_loader, accelerator, run.dev_set, run.scorer)
    run.result.history.append({"epoch": epoch, "step": run.result.optimizer_steps, "train_loss": mean_loss,
                               "dev_f1": dev_scores["f1"]})
    improved = dev_scores["f1"] > run.result.best_dev_f1
    if improved:
        run.result.best_dev_f1, run.result.best_epoch = dev_scores["f1"], epoch
        run.best_state = trainable_state(accelerator.unwrap_model(run.model))
        if run.allocation is not None:
            run.allocation.keep_best()
    if accelerator.is_main_process:
        step = f", step {run.result.optimizer_steps}/{run.total_steps}" if run.by_steps else ""
        loss = f"train loss {mean_loss:.4f}  " if mean_loss is not None else ""
        run.progress.write(f"epoch {epoch}/{run.epochs}{step}: {loss}dev {run.scorer.metric} "
                           f"{dev_scores['f1']:.4f}{'  (best)' if improved else ''}")
    notify(run.callbacks, "on_evaluate", {**run.result.history[-1], "train_seconds": train_seconds})
    return dev_scores


def train(model, accelerator, train_features: list[dict], dev_set: EvalSet, scorer: Scorer, cfg: TrainConfig,
          pad_token_id: int, identity: dict | None = None, callbacks=(),
          initialize=None, fresh_head: bool = True) -> tuple[object, TrainResult]:
    """Train ``model`` on ``train_features``; returns the prepared model holding the best dev state.

    Checkpoints every ``cfg.checkpoint_every`` optimizer steps and at each epoch end; with
    ``cfg.resume`` it continues from the latest one and reproduces the uninterrupted run exactly.
    ``identity`` (method name and settings) must match for a checkpoint to be resumed.
    ``cfg.max_steps`` fixes the optimizer steps instead of the epochs (equal budgets for any data size);
    ``cfg.eval_steps`` also scores dev every N steps, not only at epoch ends.
    ``callbacks``: objects with any of the hooks of :class:`peftner.training.callbacks.Callback`.
    ``initialize(model, batches) -> model`` (``Method.initialize``): run once before the optimizer is
    built, with an iterator over one epoch of training batches. ``fresh_head``: the head is new, so
    ``--standardize-head`` may set its starting bias (:mod:`peftner.training.head_standardization`).
    """
    run = _prepare(model, accelerator, train_features, dev_set, scorer, cfg, pad_token_id, identity, callbacks,
                   initialize, fresh_head)
    _start_or_resume(run)
    batches = len(run.train_loader)
    with tqdm(total=run.epochs * batches, desc="training", unit="batch",
              initial=(run.position.epoch - 1) * batches + run.position.batches_done,
              disable=not accelerator.is_local_main_process, dynamic_ncols=True) as run.progress:
        for epoch in range(run.position.epoch, run.epochs + 1):
            mean_loss = _train_epoch(run, epoch)
            dev_scores = _evaluate(run, epoch, mean_loss, run.result.train_seconds)
            if run.checkpoints.enabled:
                run.checkpoints.save(run.model, run.result, Position(epoch + 1), run.best_state)
            if any(notify(run.callbacks, "on_epoch_end", epoch, dev_scores)):
                break
            if cfg.max_steps and run.result.optimizer_steps >= cfg.max_steps:
                break
    if run.best_state is not None:
        load_trainable_state(accelerator.unwrap_model(run.model), run.best_state)
        if run.allocation is not None:
            run.allocation.restore_best()
    notify(run.callbacks, "on_train_end", run.result)
    return run.model, run.result
