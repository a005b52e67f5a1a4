"""The run matrix: methods × seeds (× training-set sizes), each run a training process of its own.

Each run is ``python -m peftner.cli train METHOD`` (or the same under ``accelerate launch``), so every
run takes the same code path as a user's, works from an installed package, and peak memory is per
run. A run whose ``metrics.json`` exists is skipped, so an interrupted matrix resumes; with a shared
storage (:mod:`peftner.experiments.storage`) several workers split it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.experiments import storage as shared
from peftner.experiments.results import RunRow, row_of
from peftner.report import RunMetrics


SEED_BASE = 42


@dataclass(frozen=True)
class RunSpec:
    method: str
    seed: int
    train_size: int | None  # None: the whole training split

    @property
    def key(self) -> str:
        size = "all" if self.train_size is None else str(self.train_size)
        return f"{self.method}/size-{size}/seed-{self.seed}"


def plan_runs(methods, seeds: int, train_sizes=(None,)) -> list[RunSpec]:
    """The runs in the order workers take them: every method's first seed before any second seed, so a
    matrix stopped halfway has every method in its tables (and one-seed checks come early)."""
    return [RunSpec(m, SEED_BASE + s, size) for size in train_sizes for s in range(seeds) for m in methods]


def parse_train_sizes(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            sizes.append(None)
        elif item.isdigit() and int(item) > 0:
            sizes.append(int(item))
        else:
            raise PeftnerError(f"--train-sizes: expected positive integers or 'all', got {item!r}")
    return sizes


# Flags every run of a matrix gets from the matrix itself: given again in --extra, they would win
# (the recipe's parser keeps the last) and every seed would train the same run into one folder.
MATRIX_FLAGS = ("--seed", "--output-dir", "--max-train-samples", "--run-name")


def extra_flags(text: str, methods, reserved=(), given: list[str] | None = None) -> list[str]:
    """``--extra``'s recipe flags, checked for every method before any run or trial starts.

    A flag the recipe does not know (a typo) or a bad value is refused now, not as a failure of every
    run; so is a flag in ``reserved`` (set by the matrix or the search for every run: the --extra copy
    would silently override it or be overridden). ``given``: the recipe flags the command adds itself.
    """
    import shlex

    from peftner.config import parse_args
    from peftner.methods import get_method

    try:
        argv = shlex.split(text)
    except ValueError as err:
        raise PeftnerError(f"--extra {text!r}: {err}") from None
    named = [a.split("=", 1)[0] for a in argv if a.startswith("--")]
    clash = next((flag for flag in named if flag in (*MATRIX_FLAGS, *reserved)), None)
    if clash:
        raise PeftnerError(f"--extra sets {clash}, which this command sets for every run itself; drop it from "
                           "--extra")
    for method in methods:
        try:
            parse_args(get_method(method), [*(given or []), *argv])
        except PeftnerError as err:
            raise PeftnerError(f"--extra (recipe flags of {method}): {err}") from None
    return argv


def check_cached(spec: RunSpec, run_dir: Path, metrics: RunMetrics, recipe_args: list[str],
                 method_name: str | None = None) -> None:
    """A finished run is reused only if it ran with the settings this matrix asks for: a folder named
    after the matrix's options does not capture ``--extra`` (a learning rate, say), so another
    comparison could otherwise report old runs as its own. Method settings are compared resolved for
    the model, as the run recorded them; unset ones (``None``) and ones a recorded metrics.json
    predates are not compared."""
    from peftner.config import BOOKKEEPING, config_to_dict, default_model, parse_args
    from peftner.methods import get_method
    from peftner.models.facts import inspect_model

    size = ["--max-train-samples", str(spec.train_size)] if spec.train_size is not None else []
    method = get_method(method_name or spec.method)
    cfg, method_cfg = parse_args(method, ["--seed", str(spec.seed), "--output-dir", str(run_dir), *recipe_args, *size])
    if method.for_model is not None:  # the run recorded its settings with the architecture's defaults filled in
        try:
            method_cfg = method.resolve(method_cfg, inspect_model(cfg.model or default_model(), cfg.trust_remote_code))
        except PeftnerError:
            pass  # the model cannot be inspected here: its method settings are compared as given
    recorded = {**(metrics.config or {}), **{f"{method.name}.{k}": v for k, v in (metrics.method_config or {}).items()}}
    wanted = {**config_to_dict(cfg), **{f"{method.name}.{k}": v for k, v in config_to_dict(method_cfg).items()}}
    diffs = [f"{k}: {recorded[k]!r} -> {v!r}" for k, v in wanted.items()
             if k in recorded and k not in BOOKKEEPING and v is not None and recorded[k] != v]
    if diffs:
        raise PeftnerError(f"{run_dir / 'metrics.json'}: this finished run had other settings ({'; '.join(diffs[:3])}); "
                           "give the new settings another --results-dir (or --name), or delete that run folder to "
                           "run it again")


def run_one(spec: RunSpec, run_dir: Path, recipe_args: list[str], launcher: list[str],
            method: str | None = None) -> RunMetrics:
    """Train one run in a subprocess, ``LAUNCHER -m peftner.cli train METHOD`` (``method``, default the
    spec's; skipped when its metrics.json exists); returns its metrics.

    A run killed before (a stopped worker) continues from its last checkpoint (``--resume``; a checkpoint
    of other settings stops it with one line naming its folder); a finished run's checkpoints go, as
    they only serve a resume. The wall time of the subprocess is added to metrics.json as
    ``wall_seconds`` (``extra``), of the last attempt when resumed.
    """
    from peftner.training.checkpoint import complete_checkpoints, remove_own_entries

    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        metrics = RunMetrics.read(metrics_path)
        check_cached(spec, run_dir, metrics, recipe_args, method)
        metrics.extra.setdefault("wall_seconds", None)
        return metrics
    resume = bool(complete_checkpoints(run_dir / "checkpoints"))
    command = [*launcher, "-m", "peftner.cli", "train", method or spec.method, "--seed", str(spec.seed),
               "--output-dir", str(run_dir), *recipe_args, *(["--resume"] if resume else [])]
    if spec.train_size is not None:
        command += ["--max-train-samples", str(spec.train_size)]
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(run_dir / "log.txt", "a" if resume else "w", encoding="utf-8") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        tail = (run_dir / "log.txt").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise PeftnerError(f"run {spec.key} failed (exit {result.returncode}); see {run_dir / 'log.txt'}: "
                           + " | ".join(tail))
    metrics = RunMetrics.read(metrics_path)
    metrics.extra["wall_seconds"] = wall
    metrics.write(metrics_path)
    remove_own_entries(run_dir / "checkpoints")
    with contextlib.suppress(OSError):  # left when it holds files of the user's
        (run_dir / "checkpoints").rmdir()
    return metrics


@dataclass
class Matrix:
    """A matrix of runs: methods × seeds × training-set sizes, each method with its recipe flags, every
    run started by ``launcher`` and kept under ``out/runs/METHOD/size-N/seed-S/``."""

    out: Path
    methods: list[str]
    seeds: int
    sizes: list[int | None]
    recipe_args: dict[str, list[str]]  # method (or label) -> its recipe flags
    launcher: list[str] = field(default_factory=lambda: [sys.executable])
    trains: dict[str, str] = field(default_factory=dict)  # label -> the method it trains (default: itself)
    groups: list[list[str]] | None = None  # methods in groups that run one after another (None: one group)

    @property
    def specs(self) -> dict[str, RunSpec]:
        """Every run, in the order workers take them: group by group, each in :func:`plan_runs`' order."""
        return {spec.key: spec for group in self.groups or [self.methods]
                for spec in plan_runs(group, self.seeds, self.sizes)}


def run_matrix(matrix: Matrix, workers: shared.Workers | None = None, queue: str | None = None) -> list[RunRow]:
    """Run the matrix; returns the rows of the runs that have metrics.

    Without ``workers`` this process runs the whole matrix in order; with them (a shared storage,
    :mod:`peftner.experiments.storage`), every worker claims runs from one queue (``queue``, default
    ``compare-NAME``), so N workers split the matrix with no run done twice, and a restart resumes it.
    """
    out, specs = matrix.out, matrix.specs
    for key, spec in specs.items():  # finished runs this matrix would reuse: checked before any run starts
        cached = out / "runs" / key / "metrics.json"
        if cached.exists():
            try:
                metrics = RunMetrics.read(cached)
            except (OSError, ValueError, TypeError) as err:
                raise PeftnerError(f"{cached}: unreadable ({str(err).splitlines()[0]}); delete that run folder to run "
                                   "it again") from None
            check_cached(spec, cached.parent, metrics, matrix.recipe_args[spec.method], matrix.trains.get(spec.method))

    def work(key: str) -> float:
        spec = specs[key]
        flags = matrix.recipe_args[spec.method]
        run_name = ["--run-name", key.replace("/", "_")] if "--report-to" in flags else []  # trackers' run name
        return run_one(spec, out / "runs" / key, [*flags, *run_name], matrix.launcher,
                       matrix.trains.get(spec.method)).test_f1

    if workers is None:
        started = time.perf_counter()
        for i, key in enumerate(specs, start=1):
            cached = (out / "runs" / key / "metrics.json").exists()
            print(f"[{i}/{len(specs)}] {key} {'(done before, skipped)' if cached else '...'}", flush=True)
            f1 = work(key)
            print(f"    test F1 {f1:.4f}, {(time.perf_counter() - started) / 60:.1f} min so far", flush=True)
    else:
        shared.run_queue(workers.storage, queue or f"compare-{out.name}", list(specs), work,
                         progress=workers.progress, stale_after=workers.stale_after, label=f"compare {out.name}",
                         finished=lambda key: (out / "runs" / key / "metrics.json").exists())
    rows = []
    for key, spec in specs.items():
        path = out / "runs" / key / "metrics.json"
        if path.exists():
            rows.append(row_of(spec.method, spec.seed, spec.train_size, RunMetrics.read(path)))
    return rows


def finish(storage, name: str, matrix, report, expected: int, poll: float = 10.0):
    """Run this worker's share of the matrix, then the report, written by exactly one worker.

    Without a storage: the matrix, then the report. With one, the report is itself a queued job: the
    worker that claims it keeps taking runs left by dead workers until every run has metrics.
    """
    rows = matrix()
    if storage is None:
        report(rows)
        return

    def report_job(_key: str) -> float:
        current = rows
        while len(current) < expected:
            time.sleep(poll)
            current = matrix()
        report(current)
        return float(len(current))

    shared.run_queue(storage, f"report-{name}", [f"report of {expected} runs"], report_job, label="report")
