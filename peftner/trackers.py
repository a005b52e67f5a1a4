"""Experiment trackers through Accelerate: ``--report-to tensorboard,mlflow`` (any of Accelerate's trackers).

Three small pieces, reusable by anything that trains (recipes, the benchmark matrix, ``peftner tune``):

* :func:`parse_report_to` — validate tracker names and that their package is installed (one-line errors);
* :func:`accelerator_kwargs` — what ``Accelerator(...)`` needs (``log_with``, ``project_dir``);
* :func:`start_tracking` — ``accelerator.init_trackers`` with the run's hyperparameters, returning a
  :class:`TrackerCallback` for the training loop (loss, learning rate and gradient norm per optimizer
  step; dev scores per epoch) whose :meth:`TrackerCallback.on_run_end` logs the final scores.
  ``accelerator.end_training()`` closes the trackers.

:class:`Tracking` bundles them for one run (``Tracking.from_config(cfg, ...)`` in :func:`peftner.recipe.run`;
construct it directly to log anything else, e.g. a search trial, under an experiment).

Runs are grouped by *experiment* (``--experiment``; MLflow experiment, W&B project, TensorBoard folder
``LOGGING_DIR/EXPERIMENT/RUN_NAME``) and named by ``--run-name``. Only the main process logs (Accelerate's
trackers act on the main process only). MLflow writes where ``MLFLOW_TRACKING_URI`` points (MLflow's
default otherwise: ``sqlite:///mlflow.db`` in the working directory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.training.callbacks import Callback

# Accelerate's tracker names and the package each needs (``pip install PACKAGE``).
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "comet_ml": "comet_ml",
                    "aim": "aim", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                    "trackio": "trackio"}


def parse_report_to(value, flag: str = "--report-to") -> list[str]:
    """``"tensorboard,mlflow"`` → ``["tensorboard", "mlflow"]``; ``"none"``/empty → ``[]``.

    Unknown names and trackers whose package is missing are refused in one line.
    """
    import accelerate.utils

    if value is None:
        return []
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if str(n).strip()]
    if names in ([], ["none"]):
        return []
    known = [n for n in TRACKER_PACKAGES if getattr(accelerate.utils, f"is_{n}_available", None)]
    for name in names:
        if name not in known:
            raise PeftnerError(f"{flag}: unknown tracker {name!r}; choose from none, {', '.join(known)} "
                               "(comma-separated)")
        if not getattr(accelerate.utils, f"is_{name}_available")():
            raise PeftnerError(f"{flag} {name}: the package is not installed (pip install {TRACKER_PACKAGES[name]})")
    return list(dict.fromkeys(names))


def default_logging_dir(output_dir) -> Path:
    return Path(output_dir) / "logs"


def accelerator_kwargs(report_to: list[str], logging_dir, experiment: str, run_name: str) -> dict:
    """Keyword arguments for ``Accelerator``: the trackers (TensorBoard gets its run folder) and project dir."""
    if not report_to:
        return {}
    from accelerate.tracking import TensorBoardTracker

    log_with = [TensorBoardTracker(f"{experiment}/{run_name}", str(logging_dir)) if name == "tensorboard" else name
                for name in report_to]
    return {"log_with": log_with, "project_dir": str(logging_dir)}


def flat_hyperparameters(*sections: tuple[str, dict]) -> dict:
    """``("run", {...}), ("method", {...})`` → ``{"run/epochs": 5, "method/r": 8, ...}`` with values every
    tracker accepts (numbers, strings, booleans; anything else as its JSON text)."""
    flat = {}
    for prefix, values in sections:
        for key, value in (values or {}).items():
            if not isinstance(value, (int, float, str, bool)):
                value = json.dumps(value, default=str)
            flat[f"{prefix}/{key}"] = value
    return flat


def score_values(prefix: str, scores: dict) -> dict:
    """``{"dev/f1": ..., "dev/precision": ..., "dev/recall": ..., "dev/accuracy": ..., "dev/f1_PER": ...}``."""
    values = {f"{prefix}/{k}": float(scores[k]) for k in ("f1", "precision", "recall", "accuracy")
              if scores.get(k) is not None}
    for etype, s in sorted((scores.get("per_type") or {}).items()):
        values[f"{prefix}/f1_{etype}"] = float(s["f1"])
    return values


FINAL_KEYS = ("best_dev_f1", "best_epoch", "trainable_params", "total_params", "trainable_percent", "adapter_bytes",
              "backbone_bytes", "train_seconds", "train_tokens_per_second", "peak_memory_mb", "optimizer_steps")


class TrackerCallback(Callback):
    """Training-loop hooks (:mod:`peftner.training.callbacks`) that log to the Accelerator's trackers."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.step = 0

    def _log(self, values: dict, step: int):
        if self.accelerator.is_main_process and values:
            self.accelerator.log(values, step=step)

    def on_optimizer_step(self, step: int, loss: float, lr: float, grad_norm: float | None = None):
        self.step = step
        values = {"train/loss": float(loss), "train/learning_rate": float(lr)}
        if grad_norm is not None:
            values["train/grad_norm"] = float(grad_norm)
        self._log(values, step)

    def on_epoch_end(self, epoch: int, dev_scores: dict) -> bool:
        """Dev scores at ``step = epoch`` (so a reader gets one value per epoch, as metrics.json's history)."""
        self._log(score_values("dev", dev_scores), epoch)
        return False

    def on_run_end(self, metrics):
        """Test scores and the run's costs (a ``RunMetrics`` or its dict), once, at ``step = optimizer steps``."""
        metrics = metrics.to_dict() if hasattr(metrics, "to_dict") else metrics
        values = score_values("test", {"f1": metrics.get("test_f1"), "precision": metrics.get("test_precision"),
                                       "recall": metrics.get("test_recall"), "accuracy": metrics.get("test_accuracy"),
                                       "per_type": metrics.get("per_type")})
        values.update({f"final/{k}": float(metrics[k]) for k in FINAL_KEYS if metrics.get(k) is not None})
        self._log(values, metrics.get("optimizer_steps") or self.step)


def start_tracking(accelerator, experiment: str, run_name: str, hyperparameters: dict) -> TrackerCallback | None:
    """``init_trackers`` (run name passed to the trackers that take one) → the callback, or None without trackers."""
    if not accelerator.log_with:
        return None
    init_kwargs = {"mlflow": {"run_name": run_name}, "wandb": {"name": run_name}, "comet_ml": {},
                   "aim": {}, "trackio": {"name": run_name}, "swanlab": {"experiment_name": run_name}}
    from accelerate.tracking import GeneralTracker

    names = {t.name if isinstance(t, GeneralTracker) else str(t) for t in accelerator.log_with}  # or LoggerType
    try:
        accelerator.init_trackers(experiment, config=hyperparameters,
                                  init_kwargs={k: v for k, v in init_kwargs.items() if k in names})
    except Exception as err:  # a tracker server that is down, a bad URI, missing credentials: one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PeftnerError(f"--report-to: starting {', '.join(sorted(names))} failed ({type(err).__name__}): "
                           f"{first}") from None
    return TrackerCallback(accelerator)


@dataclass
class Tracking:
    """Where and under which names one run logs; ``report_to`` empty means no tracking at all."""

    report_to: list[str]
    experiment: str = "peftner"
    run_name: str = "run"
    logging_dir: str | Path = "logs"
    hyperparameters: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg, method_name: str, method_config) -> "Tracking":
        """From a recipe's config: ``--report-to``, ``--experiment``, ``--run-name`` (default METHOD-seedN),
        ``--logging-dir`` (default OUTPUT_DIR/logs); hyperparameters = run config + method config."""
        from peftner.config import config_to_dict

        return cls(parse_report_to(cfg.report_to), cfg.experiment, cfg.run_name or f"{method_name}-seed{cfg.seed}",
                   cfg.logging_dir or default_logging_dir(cfg.output_dir),
                   flat_hyperparameters(("run", {"method": method_name, **config_to_dict(cfg)}),
                                        ("method", config_to_dict(method_config))))

    def accelerator_kwargs(self) -> dict:
        return accelerator_kwargs(self.report_to, self.logging_dir, self.experiment, self.run_name)

    def start(self, accelerator) -> TrackerCallback | None:
        return start_tracking(accelerator, self.experiment, self.run_name, self.hyperparameters)
