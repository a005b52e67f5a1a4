"""Results of a matrix: one typed row per run, one summary per method and size, and the statistics.

Rows come from each run's ``metrics.json`` (:class:`peftner.report.RunMetrics`); summaries are means
and sample standard deviations over seeds, compared with full fine-tuning by Welch's t-test.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from peftner.methods import METHODS
from peftner.methods.space import searched_fields
from peftner.report import RunMetrics, learned_nothing


@dataclass
class RunRow:
    """One run of the matrix: a line of runs.csv (its columns in this order)."""

    method: str
    seed: int
    train_size: int  # sentences trained on
    test_f1: float
    best_dev_f1: float
    trainable_params: int
    total_params: int
    trainable_percent: float
    adapter_bytes: int
    backbone_bytes: int
    train_seconds: float
    train_tokens_per_second: float
    peak_memory_mb: float
    wall_seconds: float | None  # the whole process, measured by the matrix (None: run before it recorded it)
    num_processes: int
    metric: str
    train_size_label: str  # "all" or the planned subset size
    settings: str  # the learning rate and the searched knobs ("lr 0.001, r 8")
    learned_nothing: bool = False  # dev entity F1 0 at every evaluation: a failed training (peftner.report)


CSV_COLUMNS = tuple(f.name for f in dataclasses.fields(RunRow))


@dataclass
class MethodSummary:
    """One method at one training-set size, over its seeds: a row of table.md and of summary.json."""

    method: str
    train_size: str  # "all" or the subset size
    runs: int
    seeds: list[int]
    trainable_params: int
    total_params: int
    trainable_percent: float
    adapter_bytes: int
    backbone_bytes: int
    test_f1_mean: float
    test_f1_std: float
    test_f1_by_seed: dict[int, float]
    best_dev_f1_mean: float
    best_dev_f1_std: float
    train_tokens_per_second_mean: float
    peak_memory_mb_mean: float
    wall_seconds_mean: float | None
    metric: str = "entity_f1"
    settings: str = ""
    vs_full_points: float | None = None  # mean test F1 minus full fine-tuning's, in F1 points
    vs_full_p: float | None = None  # Welch's t-test over the seeds' test F1
    seeds_learned_nothing: int = 0  # runs whose dev F1 stayed 0 (failed trainings, counted in the mean)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def row_of(method: str, seed: int, planned_size: int | None, metrics: RunMetrics) -> RunRow:
    """The row of one run from its metrics; ``planned_size`` None means the whole training split."""
    return RunRow(
        method=method, seed=seed,
        train_size=metrics.train_sentences if planned_size is None else planned_size,
        test_f1=metrics.test_f1, best_dev_f1=metrics.best_dev_f1, trainable_params=metrics.trainable_params,
        total_params=metrics.total_params, trainable_percent=metrics.trainable_percent,
        adapter_bytes=metrics.adapter_bytes, backbone_bytes=metrics.backbone_bytes,
        train_seconds=metrics.train_seconds, train_tokens_per_second=metrics.train_tokens_per_second,
        peak_memory_mb=metrics.peak_memory_mb, wall_seconds=metrics.extra.get("wall_seconds"),
        num_processes=metrics.num_processes, metric=metrics.metric,
        train_size_label="all" if planned_size is None else str(planned_size), settings=settings_of(metrics),
        learned_nothing=learned_nothing(metrics))


def settings_of(metrics: RunMetrics) -> str:
    """The run's learning rate and the knobs its method's search space varies ("lr 0.001, r 8, ...")."""
    values = {**(metrics["config"] or {}), **(metrics["method_config"] or {})}
    if not values:
        return ""
    method = METHODS.get(metrics["method"] or "")
    parts = []
    for name in searched_fields(method.search_space if method else {}):
        value = values.get(name)
        if value is None:
            value = "default"  # unset: e.g. the architecture's target modules
        elif isinstance(value, list):
            value = ",".join(map(str, value)) or "none"
        parts.append(f"lr {value:.3g}" if name == "learning_rate" else f"{name} {value}")
    return ", ".join(parts)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(rows: list[RunRow]) -> list[MethodSummary]:
    """One entry per (method, train size): means ± sample std over seeds, sizes from the first run."""
    groups: dict[tuple[str, str], list[RunRow]] = {}
    for row in rows:
        groups.setdefault((row.method, row.train_size_label), []).append(row)
    summary = []
    for (method, size), group in groups.items():
        f1_mean, f1_std = mean_std([r.test_f1 for r in group])
        dev_mean, dev_std = mean_std([r.best_dev_f1 for r in group])
        first = group[0]
        walls = [r.wall_seconds for r in group if r.wall_seconds is not None]
        summary.append(MethodSummary(
            method=method, train_size=size, runs=len(group), seeds=sorted(r.seed for r in group),
            trainable_params=first.trainable_params, total_params=first.total_params,
            trainable_percent=100.0 * first.trainable_params / first.total_params,
            adapter_bytes=first.adapter_bytes, backbone_bytes=first.backbone_bytes,
            test_f1_mean=f1_mean, test_f1_std=f1_std,
            test_f1_by_seed={r.seed: r.test_f1 for r in sorted(group, key=lambda r: r.seed)},
            best_dev_f1_mean=dev_mean, best_dev_f1_std=dev_std,
            train_tokens_per_second_mean=mean_std([r.train_tokens_per_second for r in group])[0],
            peak_memory_mb_mean=mean_std([r.peak_memory_mb for r in group])[0],
            wall_seconds_mean=mean_std(walls)[0] if walls else None,
            metric=first.metric or "entity_f1", settings=first.settings,
            seeds_learned_nothing=sum(r.learned_nothing for r in group)))
    versus_full(summary)
    return summary


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None when either side has < 2 values
    or neither varies."""
    if len(a) < 2 or len(b) < 2 or (statistics.stdev(a) == 0 and statistics.stdev(b) == 0):
        return None
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def versus_full(summary: list[MethodSummary]):
    """Each entry's test-F1 difference to full fine-tuning at the same train size, in F1 points, and
    the Welch p-value over seeds."""
    full = {s.train_size: s for s in summary if s.method == "full"}
    for s in summary:
        ref = full.get(s.train_size)
        if ref is None or s is ref:
            s.vs_full_points, s.vs_full_p = None, None
            continue
        s.vs_full_points = 100 * (s.test_f1_mean - ref.test_f1_mean)
        s.vs_full_p = welch_p(list(s.test_f1_by_seed.values()), list(ref.test_f1_by_seed.values()))


def pareto_front(points: list[MethodSummary], cost: str = "trainable_params") -> list[MethodSummary]:
    """Entries no other entry beats (by mean test F1) at the same or a lower ``cost``: an attribute of
    the summary, trainable parameters by default, or ``peak_memory_mb_mean``."""
    front, best = [], float("-inf")
    for s in sorted(points, key=lambda s: (getattr(s, cost), -s.test_f1_mean)):
        if s.test_f1_mean > best:
            front.append(s)
            best = s.test_f1_mean
    return front
