"""The one training loop every method uses, on Accelerate.

Read top to bottom: prepare → (resume from the latest checkpoint) → for each epoch: train (AdamW,
warm-up + linear decay, gradient accumulation, clipping; a checkpoint every N optimizer steps) →
evaluate dev → keep the best dev state → checkpoint → restore the best state at the end.
Evaluation gathers predictions from every process with ``gather_for_metrics`` so each example is
scored exactly once whatever the number of processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from peftner.data.alignment import words_from_positions
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
    example_ids, word_indices, predictions = [], [], []
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        preds = logits.argmax(dim=-1)
        preds = accelerator.pad_across_processes(preds, dim=1, pad_index=0)
        words = accelerator.pad_across_processes(batch["word_index"], dim=1, pad_index=-1)
        preds, words, ids = accelerator.gather_for_metrics((preds, words, batch["example_id"]))
        example_ids += ids.tolist()
        word_indices += words.tolist()
        predictions += preds.tolist()
    per_word, missing = words_from_positions(num_words, example_ids, word_indices, predictions)
    if missing:
        raise RuntimeError(f"{missing} words received no prediction (alignment bug)")
    return per_word


def evaluate_split(model, loader, accelerator, eval_set: EvalSet, id2label: dict, metric: str,
                   strict_scheme: str | None = None) -> tuple[dict, list[list[str]]]:
    ids = predict_words(model, loader, accelerator, eval_set.num_words)
    predicted = [[id2label[i] for i in row] for row in ids]
    return score(predicted, eval_set.gold, metric=metric, strict_scheme=strict_scheme), predicted


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


def _epoch_loader(accelerator, train_loader, sampler, epoch: int, skip: int):
    """The batches of ``epoch`` (fixed by seed + epoch) after the first ``skip`` already trained."""
    loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
    loader.set_epoch(epoch)  # Accelerate's loader would otherwise set its own iteration count
    sampler.set_epoch(epoch)
    return loader


def train(model, accelerator, train_features: list[dict], dev_set: EvalSet, id2label: dict, metric: str,
          cfg, pad_token_id: int, strict_scheme: str | None = None,
          identity: dict | None = None, callbacks=()) -> tuple[object, TrainResult]:
    """Train ``model`` on ``train_features``; returns the prepared model holding the best dev state.

    Checkpoints every ``cfg.checkpoint_every`` optimizer steps and at each epoch end; with
    ``cfg.resume`` it continues from the latest one and reproduces the uninterrupted run exactly.
    ``identity`` (method name and settings) must match for a checkpoint to be resumed.
    ``callbacks``: objects with any of the hooks of :class:`peftner.training.callbacks.Callback`.
    """
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
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay, cfg.optimizer_kernel,
                                accelerator.device.type)
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, scheduler)
    train_step_model = compiled(model) if cfg.compile else model
    allocation = RankAllocation.of(accelerator.unwrap_model(model), total_steps)  # AdaLoRA only

    checkpoints = Checkpointer(accelerator, Path(cfg.output_dir) / "checkpoints", cfg.checkpoint_every,
                               cfg.keep_checkpoints, run_fingerprint(cfg, identity, train_features,
                                                                     dev_set.features, dev_set.gold))
    checkpoints.extra = allocation
    result, position, best_state = TrainResult(best_dev_f1=-1.0, best_epoch=0), Position(), None
    restored = checkpoints.restore_latest() if cfg.resume else checkpoints.start_fresh()
    if restored:
        saved, position, best_state = restored
        result = TrainResult(**saved)

    with tqdm(total=cfg.epochs * len(train_loader), desc="training", unit="batch",
              initial=(position.epoch - 1) * len(train_loader) + position.batches_done,
              disable=not accelerator.is_local_main_process, dynamic_ncols=True) as progress:
        for epoch in range(position.epoch, cfg.epochs + 1):
            resumed = position if epoch == position.epoch else Position(epoch)
            model.train()
            started = time.perf_counter() - resumed.seconds_in_epoch
            loss_sum, tokens = resumed.running_sums(accelerator.process_index, accelerator.device)
            loader = _epoch_loader(accelerator, train_loader, sampler, epoch, resumed.batches_done)
            for batch_number, batch in enumerate(loader, start=resumed.batches_done + 1):
                with accelerator.accumulate(model):
                    outputs = train_step_model(**{k: batch[k] for k in MODEL_INPUTS})
                    loss = outputs.loss
                    if not _finite_everywhere(accelerator, loss):
                        raise PeftnerError(checkpoints.stop_message(
                            f"loss became {loss.item()} at epoch {epoch}, batch {batch_number}"))
                    accelerator.backward(loss)
                    grad_norm = None
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    lr = scheduler.get_last_lr()[0]
                    optimizer.step()
                    scheduler.step()
                    result.optimizer_steps += int(accelerator.sync_gradients)
                    if allocation is not None and accelerator.sync_gradients:
                        allocation.step(result.optimizer_steps)  # reads the gradients: before zero_grad
                    optimizer.zero_grad(set_to_none=True)
                if callbacks and accelerator.sync_gradients:
                    notify(callbacks, "on_optimizer_step", result.optimizer_steps, loss.item(), lr,
                           None if grad_norm is None else float(grad_norm))
                tokens += batch["attention_mask"].sum()
                loss_sum += loss.detach()
                progress.update(1)
                progress.set_postfix(epoch=epoch, loss=f"{loss.item():.4f}", refresh=False)
                if (accelerator.sync_gradients and checkpoints.due(result.optimizer_steps)
                        and batch_number < len(train_loader)):  # the epoch-end checkpoint follows anyway
                    here = Position(epoch, batch_number, seconds_in_epoch=time.perf_counter() - started)
                    started += checkpoints.save(model, result, here, best_state, loss_sum, tokens)
            result.train_seconds += time.perf_counter() - started
            result.train_tokens += int(accelerator.reduce(tokens, reduction="sum").item())
            mean_loss = accelerator.reduce(loss_sum, reduction="mean").item() / max(1, len(train_loader))

            dev_scores, _ = evaluate_split(model, dev_loader, accelerator, dev_set, id2label, metric, strict_scheme)
            result.history.append({"epoch": epoch, "train_loss": mean_loss, "dev_f1": dev_scores["f1"]})
            improved = dev_scores["f1"] > result.best_dev_f1
            if improved:
                result.best_dev_f1, result.best_epoch = dev_scores["f1"], epoch
                best_state = trainable_state(accelerator.unwrap_model(model))
                if allocation is not None:
                    allocation.keep_best()
            if accelerator.is_main_process:
                progress.write(f"epoch {epoch}/{cfg.epochs}: train loss {mean_loss:.4f}  dev {metric} "
                               f"{dev_scores['f1']:.4f}{'  (best)' if improved else ''}")
            if checkpoints.enabled:
                checkpoints.save(model, result, Position(epoch + 1), best_state)
            if any(notify(callbacks, "on_epoch_end", epoch, dev_scores)):
                break
    if best_state is not None:
        load_trainable_state(accelerator.unwrap_model(model), best_state)
        if allocation is not None:
            allocation.restore_best()
    notify(callbacks, "on_train_end", result)
    return model, result
