"""Hooks into the training loop, for trackers (``--report-to``) and hyper-parameter search (pruning).

Pass a list of objects to :func:`peftner.training.loop.train` (or :func:`peftner.recipe.run`); each may
define any of the methods of :class:`Callback`, missing ones are skipped. The loop calls them on every
process; a callback that only acts on the main process checks ``accelerator.is_main_process`` itself.
"""

from __future__ import annotations


class Callback:
    """The hook points, as no-ops: subclass and override the ones you need."""

    def on_optimizer_step(self, step: int, loss: float, lr: float, grad_norm: float | None) -> bool | None:
        """After each optimizer step: ``step`` counts from 1, ``loss`` is this process's last micro-batch
        loss, ``lr`` the learning rate the step used, ``grad_norm`` the norm before clipping (None when
        ``max_grad_norm`` is 0, so nothing computed it). Return True to end the epoch here: it is scored
        as an epoch end, and ``on_epoch_end`` says whether training stops (a trial's step budget)."""

    def on_evaluate(self, entry: dict) -> None:
        """After every dev evaluation, at epoch ends and every ``--eval-steps`` steps: ``entry`` is the
        history row (epoch, step, train_loss or None mid-epoch, dev_f1) plus ``train_seconds``, the training
        time so far (evaluation excluded). A tuner prunes here by raising."""

    def on_epoch_end(self, epoch: int, dev_scores: dict) -> bool:
        """After each epoch's dev evaluation (``dev_scores``: f1, precision, recall, accuracy, per_type).
        Return True to stop training now (the best dev state so far is kept); every process must
        return the same answer."""
        return False

    def on_train_end(self, result) -> None:
        """Once, after the best dev state is restored; ``result`` is the loop's ``TrainResult``."""


def notify(callbacks, hook: str, *args) -> list:
    """Call ``hook`` on every callback that has it; returns their answers."""
    return [getattr(c, hook)(*args) for c in callbacks or () if hasattr(c, hook)]
