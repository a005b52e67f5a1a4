"""The comparison as text: markdown tables for the docs and a rich table for the terminal."""

from __future__ import annotations

from peftner.experiments.results import MethodSummary
from peftner.markdown import markdown_table, mean_and_spread


def f1_cell(entry: MethodSummary) -> str:
    """Test F1 over the entry's seeds (mean ± sample std, or the one seed's) and its failed seeds."""
    return f1_text(entry.test_f1_mean, entry.test_f1_std, entry.runs, entry.seeds_learned_nothing)


def f1_text(mean: float, std: float, runs: int, failed: int = 0) -> str:
    """``mean ± std`` over ``runs`` seeds, saying how many of them learned nothing (dev F1 0 throughout:
    a failed training, not the method's level, though it is in the mean)."""
    note = f", {'its seed' if runs == 1 else f'{failed} of {runs} seeds'} learned nothing" if failed else ""
    return mean_and_spread(mean, std, runs) + note


def significance_mark(p: float | None) -> str:
    return "n/a" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def tuned_table_markdown(summary: list[MethodSummary], sweeps: dict[str, dict]) -> str:
    """The reader's table: tuned settings, F1 over seeds, difference to full with significance, size, time."""
    columns = dict.fromkeys(["method", "tuned settings", "search (trials: complete / pruned)", "best dev F1 in search",
                             "trainable params", "% of total", "adapter on disk", "test F1 (mean ± std)",
                             "test F1 by seed", "vs full (F1 points)", "time per run"], "l")
    rows = []
    for s in summary:
        sw = sweeps.get(s.method, {})
        vs = ("reference" if s.method == "full" else "n/a" if s.vs_full_points is None else
              f"{s.vs_full_points:+.2f} ({significance_mark(s.vs_full_p)}"
              + (f", p {s.vs_full_p:.3f})" if s.vs_full_p is not None else ")"))
        # the winner's flags as given (a run's config holds resolved values, e.g. all-linear's regex)
        settings = f"`{sw['best_flags']}`" if sw.get("best_flags") else s.settings.replace("|", "\\|")
        rows.append([s.method, settings, f"{sw['done']}: {sw['complete']} / {sw['pruned']}" if sw else "not tuned",
                     f"{sw['best_dev_f1']:.4f}" if sw.get("best_dev_f1") is not None else "n/a",
                     f"{s.trainable_params:,}", f"{s.trainable_percent:.3f}%", format_bytes(s.adapter_bytes),
                     f1_cell(s), _by_seed(s), vs, _wall(s)])
    lines = markdown_table(columns, rows)
    lines += ["", "vs full: difference of mean test F1 to full fine-tuning in F1 points; significance by Welch's "
              "t-test (two-sided, unequal variances) over the seeds' test F1: ** p < 0.01, * p < 0.05, n.s. not "
              "significant. With 3 seeds per side only large differences can reach significance."]
    return "\n".join(lines) + "\n"


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def table_markdown(summary: list[MethodSummary]) -> str:
    columns = dict.fromkeys(["method", "train size", "trainable params", "% of total", "adapter on disk",
                             "backbone in memory", "test F1 (mean ± std)", "test F1 by seed", "best dev F1",
                             "train tokens/s", "peak memory", "wall time"], "l")
    lines = markdown_table(columns, ([
        s.method, s.train_size, f"{s.trainable_params:,}", f"{s.trainable_percent:.3f}%", format_bytes(s.adapter_bytes),
        format_bytes(s.backbone_bytes), f1_cell(s), _by_seed(s), f"{s.best_dev_f1_mean:.4f}",
        f"{s.train_tokens_per_second_mean:,.0f}", f"{s.peak_memory_mb_mean:,.0f} MB", _wall(s)] for s in summary))
    return "\n".join(lines) + "\n"


def _by_seed(s: MethodSummary) -> str:
    return " / ".join(f"{f1:.3f}" for f1 in s.test_f1_by_seed.values())  # spots a collapsed seed


def _wall(s: MethodSummary) -> str:
    return f"{s.wall_seconds_mean:.0f} s" if s.wall_seconds_mean is not None else "n/a"


def print_rich_table(summary: list[MethodSummary]):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="peftner: trainable parameters vs F1")
    for column in ("method", "size", "trainable", "%", "adapter", "test F1", "dev F1", "tok/s", "peak MB"):
        table.add_column(column, justify="left" if column in ("method", "size") else "right")
    for s in summary:
        table.add_row(s.method, s.train_size, f"{s.trainable_params:,}", f"{s.trainable_percent:.3f}",
                      format_bytes(s.adapter_bytes), f1_cell(s),
                      f"{s.best_dev_f1_mean:.4f}", f"{s.train_tokens_per_second_mean:,.0f}",
                      f"{s.peak_memory_mb_mean:,.0f}")
    Console().print(table)
