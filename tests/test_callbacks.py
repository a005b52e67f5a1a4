"""The training loop's callback hooks (peftner.training.callbacks): called in order, and able to stop."""

from __future__ import annotations

from conftest import memorise_argv

from peftner.config import parse_args
from peftner.methods import get_method
from peftner.recipe import run


class Recorder:
    def __init__(self, stop_after: int | None = None):
        self.steps, self.epochs, self.ended, self.stop_after = [], [], None, stop_after

    def on_optimizer_step(self, step, loss, lr, grad_norm):
        self.steps.append((step, loss, lr, grad_norm))

    def on_epoch_end(self, epoch, dev_scores):
        self.epochs.append((epoch, dev_scores["f1"]))
        return self.stop_after is not None and epoch >= self.stop_after

    def on_train_end(self, result):
        self.ended = result


def test_hooks_see_every_step_and_epoch_and_can_stop_early(tmp_path, tiny_model, memorisable_files):
    method = get_method("lora")
    cfg, method_config = parse_args(method, memorise_argv(memorisable_files, tiny_model, tmp_path, "--epochs", 3))
    recorder, partial = Recorder(stop_after=2), object()  # an object without hooks is skipped
    metrics = run(method, cfg, method_config, callbacks=[recorder, partial])
    assert [e for e, _ in recorder.epochs] == [1, 2]  # stopped after epoch 2 of 3
    assert [s for s, *_ in recorder.steps] == list(range(1, 7))  # 24 sentences / batch 8 = 3 steps an epoch
    assert all(lr > 0 and grad_norm > 0 and loss > 0 for _, loss, lr, grad_norm in recorder.steps)
    lrs = [lr for _, _, lr, _ in recorder.steps]  # 9 planned steps: no warm-up step, then linear decay
    assert lrs[0] == cfg.learning_rate and lrs == sorted(lrs, reverse=True) and lrs[1] < lrs[0]
    assert recorder.ended.optimizer_steps == 6 == metrics["optimizer_steps"]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert [f for _, f in recorder.epochs] == [h["dev_f1"] for h in metrics["history"]]
