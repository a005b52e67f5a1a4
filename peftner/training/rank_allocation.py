"""AdaLoRA's rank allocation, driven by the training loop (Zhang et al. 2023).

AdaLoRA starts every adapted matrix at ``init_r`` and, by importance scores gathered from the
gradients, prunes singular values until the whole model holds ``target_r`` per matrix on average.
PEFT implements the schedule but leaves the calls to the loop: ``update_and_allocate(step)`` after
each optimizer step, before the gradients are cleared, with ``total_step`` the run's real number of
optimizer steps. :class:`RankAllocation` does that, and keeps what the loop's other duties need
consistent with it:

* the best-dev-epoch restore brings back that epoch's rank pattern with its weights and re-applies
  the mask, so the model scored on the test set is exactly the (pruned) adapter that is saved;
* checkpoints carry the importance statistics (safetensors) and the rank pattern (JSON), so a
  resumed run allocates the same ranks as an uninterrupted one.

Steps are counted from 1: the last optimizer step is ``total_step``, where PEFT fixes the final
budget (``target_r``), or ``total_step - tfinal`` when a final phase is configured.
"""

from __future__ import annotations

import copy

import torch

from peftner.errors import PeftnerError

_STATS = ("ipt", "exp_avg_ipt", "exp_avg_unc")


class RankAllocation:
    """The AdaLoRA adapter of a model and its allocator, stepped by :func:`peftner.training.loop.train`."""

    def __init__(self, tuner, config):
        self.tuner, self.config = tuner, config
        self.best_pattern = None

    @classmethod
    def of(cls, model, total_steps: int) -> "RankAllocation | None":
        """The allocation for ``model`` (unwrapped) if it carries a trainable AdaLoRA adapter, else None.

        Sets AdaLoRA's ``total_step`` to ``total_steps`` and checks that the schedule fits in it.
        """
        tuner = getattr(model, "base_model", None)
        if not callable(getattr(tuner, "update_and_allocate", None)) or not hasattr(tuner, "rankallocator"):
            return None
        config = tuner.peft_config[tuner.trainable_adapter_name]
        if config.tinit >= total_steps - config.tfinal:
            raise PeftnerError(f"AdaLoRA: tinit ({config.tinit}) + tfinal ({config.tfinal}) leave no rank-"
                               f"allocation steps in this run's {total_steps} optimizer steps; lower them in "
                               "the --peft-config file or train longer")
        config.total_step = total_steps  # the allocator reads the same config object
        return cls(tuner, config)

    def step(self, optimizer_steps: int):
        """After optimizer step number ``optimizer_steps`` (1-based), before the gradients are cleared."""
        self.tuner.update_and_allocate(optimizer_steps)

    @property
    def rank_pattern(self) -> dict | None:
        return self.config.rank_pattern

    def ranks(self) -> dict[str, int]:
        """Current rank of every adapted matrix (``init_r`` each until the first allocation)."""
        pattern = self.rank_pattern
        if pattern is None:
            return {}
        return {name: int(sum(bool(v) for v in kept)) for name, kept in pattern.items()}

    def keep_best(self):
        """Remember the rank pattern now, with the copy of the weights the loop keeps (best dev epoch)."""
        self.best_pattern = copy.deepcopy(self.rank_pattern)

    def restore_best(self):
        """Bring back the best epoch's rank pattern and zero the singular values it prunes.

        The weights restored from an earlier epoch carry values in rows that were pruned later (and,
        with ``deltaT`` > 1, the optimizer moves pruned rows between two maskings): masking them
        makes the model in memory equal to the saved adapter, which keeps only the pattern's rows.
        """
        self.config.rank_pattern = copy.deepcopy(self.best_pattern)
        if self.best_pattern:
            self.tuner.rankallocator.mask_using_rank_pattern(self.tuner.model, self.best_pattern)

    # checkpoints: tensors into safetensors, the pattern into progress.json
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        allocator = self.tuner.rankallocator
        tensors = {f"{kind}/{name}": value.detach().to("cpu").contiguous()
                   for kind in _STATS for name, value in getattr(allocator, kind).items()}
        return tensors, {"rank_pattern": self.rank_pattern, "best_rank_pattern": self.best_pattern}

    def load_state(self, tensors: dict[str, torch.Tensor], info: dict):
        allocator = self.tuner.rankallocator
        allocator.reset_ipt()
        device = next(self.tuner.model.parameters()).device
        for key, value in tensors.items():
            kind, name = key.split("/", 1)
            if kind not in _STATS:
                raise PeftnerError(f"checkpoint: unexpected AdaLoRA statistic {key}")
            getattr(allocator, kind)[name] = value.to(device)
        self.config.rank_pattern = info.get("rank_pattern")
        self.best_pattern = info.get("best_rank_pattern")
