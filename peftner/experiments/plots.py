"""The comparison as pictures: F1 against trainable parameters or peak memory (with the Pareto
front) and against training-set size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peftner.experiments.results import MethodSummary, pareto_front


def spread_labels(xs: list[float], ys: list[float], gap: float, near_decades: float = 0.6) -> list[float]:
    """Label heights at least ``gap`` apart among points whose x (log scale) is near: so methods with
    the same parameter count do not print on top of each other."""
    import math

    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed: list[int] = []
    out = list(ys)
    for i in order:
        for j in placed:
            if abs(math.log10(xs[i]) - math.log10(xs[j])) < near_decades and out[i] < out[j] + gap:
                out[i] = out[j] + gap
        placed.append(i)
    return out


@dataclass(frozen=True)
class CostAxis:
    """How F1 is plotted against one cost: its labels, its file-name part, and the label layout (memory
    spans a narrow range on the log axis, so its labels crowd sooner and sit closer)."""

    label: str
    name: str
    file_part: str
    label_gap_decades: float  # points nearer than this share a label column
    label_reach: float  # label x = point x * reach
    margins: tuple[float, float]  # x limits: smallest / left, largest * right


# What a comparison can be plotted against: the summary's attribute -> its axis
COSTS = {"trainable_params": CostAxis("trainable parameters", "trainable parameters", "params", 0.6, 1.6, (2, 8)),
         "peak_memory_mb_mean": CostAxis("peak training memory, MB", "peak memory", "memory", 0.05, 1.03, (1.05, 1.3))}


def plot_f1_vs_cost(summary: list[MethodSummary], path: Path, train_size: str = "all",
                    cost: str = "trainable_params", title: str = "") -> Path:
    """Test F1 (mean ± std) against a cost on a log axis (``COSTS``), the Pareto front in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [s for s in summary if s.train_size == train_size] or summary
    front = pareto_front(points, cost)
    axis = COSTS[cost]
    xs = [float(getattr(s, cost)) for s in points]
    fig, ax = plt.subplots(figsize=(8, 5))
    # Methods with the same cost sit side by side (a small shift on the log axis), so each error bar
    # stays visible.
    same = {}
    for s, x in zip(points, xs):
        same.setdefault(x, []).append(s)
    shown = {}
    for x, group in same.items():
        for k, s in enumerate(sorted(group, key=lambda s: s.test_f1_mean)):
            shown[id(s)] = x * 1.07 ** (k - (len(group) - 1) / 2)
    for s in points:
        on_front = any(s is f for f in front)
        ax.errorbar(shown[id(s)], s.test_f1_mean, yerr=s.test_f1_std, fmt="o", capsize=3,
                    color="tab:red" if on_front else "tab:blue", markersize=7 if on_front else 5)
    fx = [float(getattr(f, cost)) for f in front]
    fy = [f.test_f1_mean for f in front]
    ax.step(fx + [max(xs) * 1.5], fy + fy[-1:], where="post", color="tab:red",
            alpha=0.5, linestyle="--", label=f"Pareto front (no method scores higher with less {axis.name})")
    lows = [s.test_f1_mean - s.test_f1_std for s in points]
    highs = [s.test_f1_mean + s.test_f1_std for s in points]
    span = max(max(highs) - min(lows), 0.05)
    heights = spread_labels(xs, [s.test_f1_mean for s in points], gap=0.06 * span, near_decades=axis.label_gap_decades)
    for s, x, height in zip(points, xs, heights):
        ax.annotate(s.method, (shown[id(s)], s.test_f1_mean), xytext=(x * axis.label_reach, height),
                    textcoords="data", fontsize=9, va="center",
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.7})
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / axis.margins[0], max(xs) * axis.margins[1])
    ax.set_ylim(min(lows) - 0.05 * span, max(max(highs), max(heights)) + 0.08 * span)
    ax.set_xlabel(f"{axis.label} (log scale)")
    ax.set_ylabel("test " + ("entity F1" if points[0].metric == "entity_f1" else "token accuracy"))
    spread = "mean ± std over seeds" if any(p.runs > 1 for p in points) else "one seed"
    ax.set_title(title or f"F1 vs {axis.name} ({spread}, train size {points[0].train_size})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_f1_vs_train_size(summary: list[MethodSummary], path: Path, full_size: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(s.method for s in summary):
        points = sorted(((full_size if s.train_size == "all" else int(s.train_size)), s.test_f1_mean,
                         s.test_f1_std) for s in summary if s.method == method)
        xs, ys, es = zip(*points)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
    ax.set_xscale("log")
    ax.set_xlabel("training sentences (log scale)")
    ax.set_ylabel("test F1")
    spread = "mean ± std over seeds" if any(s.runs > 1 for s in summary) else "one seed"
    ax.set_title(f"Data efficiency: F1 vs training-set size ({spread})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
