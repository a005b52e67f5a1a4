"""The comparison as text: markdown tables for the docs and a rich table for the terminal."""

from __future__ import annotations

from peftner.experiments.results import MethodSummary


def f1_cell(entry: dict) -> str:
    """Mean ± sample std over seeds; one seed has no spread to show (not ± 0)."""
    if entry.runs < 2:
        return f"{entry.test_f1_mean:.4f} (1 seed)"
    return f"{entry.test_f1_mean:.4f} ± {entry.test_f1_std:.4f}"


def significance_mark(p: float | None) -> str:
    return "n/a" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def tuned_table_markdown(summary: list[MethodSummary], sweeps: dict[str, dict]) -> str:
    """The reader's table: tuned settings, F1 over seeds, difference to full with significance, size, time."""
    header = ("| method | tuned settings | search (trials: complete / pruned) | best dev F1 in search | "
              "trainable params | % of total | adapter on disk | test F1 (mean ± std) | test F1 by seed | "
              "vs full (F1 points) | time per run |")
    lines = [header, "|" + "---|" * 11]
    for s in summary:
        sw = sweeps.get(s.method, {})
        search = f"{sw['done']}: {sw['complete']} / {sw['pruned']}" if sw else "not tuned"
        best_dev = f"{sw['best_dev_f1']:.4f}" if sw.get("best_dev_f1") is not None else "n/a"
        vs = ("reference" if s.method == "full" else "n/a" if s.vs_full_points is None else
              f"{s.vs_full_points:+.2f} ({significance_mark(s.vs_full_p)}"
              + (f", p {s.vs_full_p:.3f})" if s.vs_full_p is not None else ")"))
        wall = f"{s.wall_seconds_mean:.0f} s" if s.wall_seconds_mean is not None else "n/a"
        by_seed = " / ".join(f"{f1:.3f}" for f1 in s.test_f1_by_seed.values())
        # the winner's flags as given (a run's config holds resolved values, e.g. all-linear's regex)
        settings = f"`{sw['best_flags']}`" if sw.get("best_flags") else s.settings.replace("|", "\\|")
        lines.append(f"| {s.method} | {settings} | {search} | {best_dev} | {s.trainable_params:,} | "
                     f"{s.trainable_percent:.3f}% | {format_bytes(s.adapter_bytes)} | "
                     f"{f1_cell(s)} | {by_seed} | {vs} | {wall} |")
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
    header = ("| method | train size | trainable params | % of total | adapter on disk | backbone in memory | "
              "test F1 (mean ± std) | test F1 by seed | best dev F1 | train tokens/s | peak memory | wall time |")
    lines = [header, "|" + "---|" * 12]
    for s in summary:
        wall = f"{s.wall_seconds_mean:.0f} s" if s.wall_seconds_mean is not None else "n/a"
        by_seed = " / ".join(f"{f1:.3f}" for f1 in s.test_f1_by_seed.values())  # spots a collapsed seed
        lines.append(
            f"| {s.method} | {s.train_size} | {s.trainable_params:,} | {s.trainable_percent:.3f}% | "
            f"{format_bytes(s.adapter_bytes)} | {format_bytes(s.backbone_bytes)} | "
            f"{f1_cell(s)} | {by_seed} | {s.best_dev_f1_mean:.4f} | "
            f"{s.train_tokens_per_second_mean:,.0f} | {s.peak_memory_mb_mean:,.0f} MB | {wall} |")
    return "\n".join(lines) + "\n"


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
