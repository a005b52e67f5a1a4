"""Work shared by many processes through one Optuna storage: hyperparameter studies and run queues.

Any number of workers — on one machine or many — open the same storage (a SQLite file, an RDB URL
such as ``postgresql://...``, or a journal file on a shared filesystem) and split the work:

* a **study** (``peftner tune``): each worker asks Optuna for the next trial; the sampler sees every
  finished trial of every worker;
* a **run queue** (the compare matrix, a tuned winner's seeds): every run is an enqueued trial whose
  ``user_attrs["run"]`` names it; ``study.ask()`` hands a waiting trial to exactly one worker, so a
  run is claimed once, and a finished (COMPLETE) run is never started again.

A worker that dies leaves its trial RUNNING. Every worker stamps its trials with host, process id
and a heartbeat; :func:`reap_stale` fails a RUNNING trial whose process is gone (same host) or whose
heartbeat is older than ``stale_after`` seconds (other hosts), and puts its work back in the queue.
So a sweep resumes after any interruption by simply starting the workers again.
"""

from __future__ import annotations

import csv
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from peftner.errors import PeftnerError, stop_if_signalled

RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
STALE_AFTER = 3600.0
# FAIL trials that did no work of their own: interrupted (requeued), a run claimed twice, an ask that
# found the queue empty, a trial beyond the study's size, another matrix's run handed back.
NOT_RUN = ("interrupted", "duplicate_of", "empty_queue", "surplus", "handed_back")  # seconds without a heartbeat before another host's RUNNING trial counts as dead


def _optuna():
    try:
        import optuna
    except ImportError:
        raise PeftnerError("sweeps need the package optuna (pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str, repair: bool = True):
    """An Optuna storage from ``--storage``: an RDB URL (``sqlite:///sweep.db``), or a journal file
    path (``sweep.journal`` or ``journal:PATH``; safe on a shared filesystem).

    A journal whose last record was cut off by a crash is repaired first (:func:`repair_journal`);
    ``repair=False`` (reading only: ``--status``, reports) leaves the file as it is, and Optuna's
    reader skips the cut-off record."""
    _optuna()  # a missing optuna is one line here, and its logging quieted before any storage opens
    scheme = url.split(":", 1)[0].split("+", 1)[0] if "://" in url else None
    if scheme in RDB_SCHEMES:
        if scheme == "sqlite":
            folder = Path(url.split(":///", 1)[-1]).parent
            if not folder.is_dir():
                raise PeftnerError(f"--storage {url}: folder {folder} does not exist")
        return _open_rdb(url)
    if scheme is not None:
        raise PeftnerError(f"--storage {url}: unknown scheme {scheme!r} (use sqlite:///FILE, an RDB URL or a "
                           "journal file path)")
    path = Path(url.removeprefix("journal:"))
    if not path.parent.is_dir():
        raise PeftnerError(f"--storage {url}: folder {path.parent} does not exist")
    if path.is_dir():
        raise PeftnerError(f"--storage {url}: is a directory, expected a journal file (or sqlite:///FILE.db)")
    from optuna.storages.journal import JournalStorage

    backend = _journal_backend()(str(path))
    repair_journal(path, backend, write=repair)
    try:
        return JournalStorage(backend)
    except (ValueError, KeyError, TypeError) as err:  # records that parse but are not Optuna's
        reason = f"a record lacks the key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0][:120]
        raise PeftnerError(f"--storage {url}: not an Optuna journal ({reason}); move it aside or name another "
                           "--storage") from None


def _open_rdb(url: str, attempts: int = 8):
    """``RDBStorage(url)``, retried: workers started at the same moment on a new database race to
    create its tables (one wins, the others see "table already exists" or a duplicate schema
    version) — a moment later the tables are there and opening succeeds."""
    import random

    optuna = _optuna()
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as err:  # noqa: BLE001 - SQLAlchemy raises many kinds; one line for the user
            racing = any(sign in str(err) for sign in ("already exists", "UNIQUE constraint", "Duplicate",
                                                       "database is locked"))
            if attempt == attempts - 1 or not racing:
                raise PeftnerError(f"--storage {url}: cannot open ({str(err).splitlines()[0]})") from None
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))


JOURNAL_RECORD = b'{"op_code"'  # how every record of Optuna's journal begins


def _whole(line: bytes) -> dict | None:
    import json

    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _split_record(line: bytes) -> tuple[bytes, dict] | None:
    """``(cut-off bytes, record)`` of a complete journal line: a whole record (no cut-off bytes), or a
    record cut off by a crash with a whole one appended behind it; None when the line is damaged."""
    record = _whole(line)
    if record is not None:
        return b"", record
    glued = line.rfind(JOURNAL_RECORD)
    record = _whole(line[glued:]) if glued > 0 else None
    return (line[:glued], record) if record is not None else None


def _journal_backend():
    from optuna.storages.journal import JournalFileBackend

    class TolerantJournalFile(JournalFileBackend):
        """Optuna's journal file, read so that a record cut off by a worker that crashed mid-write
        cannot stop the workers still running: a cut-off last line is not read until it is complete,
        and a whole record appended behind a cut-off one is read as itself. Records are numbered as
        Optuna numbers them; damage anywhere else is one line naming the file and line."""

        def __init__(self, file_path: str):
            super().__init__(file_path)
            self._records, self._offset, self._lines = [], 0, 0

        def read_logs(self, log_number_from: int):
            with open(self._file_path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
            *complete, _ = data.split(b"\n")  # the part after the last line break is still being written
            for line in complete:
                self._offset += len(line) + 1
                self._lines += 1
                split = _split_record(line)
                if split is None:
                    raise PeftnerError(f"{self._file_path}:{self._lines}: damaged journal record (not JSON); "
                                       "restore the journal from a copy, or move it aside to start a new study")
                self._records.append(split[1])
            yield from self._records[log_number_from:]

    return TolerantJournalFile


def repair_journal(path: Path, backend, write: bool = True) -> None:
    """Make a journal whose last record was cut off by a crash safe to append to, keeping every byte.

    Optuna appends one JSON record per line. A worker killed while writing leaves its last line cut
    off, and the next append would glue a record behind it. Under the journal's own lock (no worker
    is writing then), cut-off bytes after the last line break are moved to ``PATH.torn-<time>-<pid>``
    and truncated away (in place: workers still running read on from their offsets, which never pass
    an incomplete line). Lines glued by older versions are read as their whole record
    (:func:`_journal_backend`); any other damage is refused naming the line. ``write=False``
    (reading only): warn and leave the file as it is.
    """
    from optuna.storages.journal._file import get_lock_file

    with get_lock_file(backend._lock):
        data = path.read_bytes()
        *body, tail = data.split(b"\n")  # tail: the bytes after the last line break (b"" when none)
        damaged = next((n for n, line in enumerate(body, start=1) if _split_record(line) is None), None)
        if damaged is not None:
            raise PeftnerError(f"{path}:{damaged}: damaged journal record (not JSON); restore the journal from a "
                               "copy, or move it aside to start a new study")
        if not tail:
            return
        if _whole(tail) is not None:  # a whole record whose line break was lost
            if write:
                with open(path, "ab") as handle:
                    handle.write(b"\n")
            return
        if not write:
            print(f"peftner: warning: {path}: its last record was cut off by a crash ({len(tail)} bytes); it is "
                  "skipped, and the next search moves it aside", file=sys.stderr)
            return
        aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        aside.write_bytes(tail)
        os.truncate(path, len(data) - len(tail))
    print(f"peftner: warning: {path}: its last record was cut off by a crash; its {len(tail)} bytes were moved to "
          f"{aside} and the journal continues from its complete records", file=sys.stderr)


def load_study(storage, name: str, sampler=None, pruner=None):
    """The study for a worker, created if new. Loading an existing one writes nothing (creating appends a
    record to a journal file even when the study exists, and every worker start would add one)."""
    optuna = _optuna()
    try:
        return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    except KeyError:
        return optuna.create_study(storage=storage, study_name=name, load_if_exists=True, direction="maximize",
                                   sampler=sampler, pruner=pruner)


def delete_command(storage, name: str) -> str:
    """Optuna's command that deletes study ``name`` from ``storage`` (a journal file or an RDB URL)."""
    import shlex

    where = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "_file_path", "STORAGE")
    return f"optuna delete-study --storage {shlex.quote(str(where))} --study-name {shlex.quote(name)}"


def set_study_attrs(study, **attrs):
    """Record ``attrs`` on ``study``, writing only those that are new or changed."""
    recorded = study.user_attrs
    for key, value in attrs.items():
        if recorded.get(key) != value:
            study.set_user_attr(key, value)


def read_study(storage, name: str):
    """An existing study, for reports and progress lines: writes nothing to the storage, so a
    committed journal stays unchanged when it is only read."""
    try:
        return _optuna().load_study(storage=storage, study_name=name)
    except KeyError:
        raise PeftnerError(f"no study named {name} in this storage yet (start one with peftner tune)") from None


def stamp(trial):
    """Record who runs ``trial`` and that it is alive (called at the start and after each evaluation)."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("heartbeat", time.time())


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(frozen, stale_after: float = STALE_AFTER, now: float | None = None) -> bool:
    """Whether a RUNNING trial's worker is gone: its process no longer exists on this host, or its
    heartbeat is older than ``stale_after`` seconds (any host; also catches a reused process id)."""
    attrs = frozen.user_attrs
    if attrs.get("host") == socket.gethostname() and attrs.get("pid") is not None:
        if attrs["pid"] == os.getpid():
            return False
        if not _process_alive(int(attrs["pid"])):
            return True
    beat = attrs.get("heartbeat") or (frozen.datetime_start.timestamp() if frozen.datetime_start else 0)
    return (now or time.time()) - beat > stale_after


def reap_stale(study, storage, stale_after: float = STALE_AFTER, requeue: bool = True) -> list[int]:
    """Fail the RUNNING trials of dead workers and enqueue their work again; returns their numbers."""
    optuna = _optuna()
    reaped = []
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not is_stale(frozen, stale_after):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), frozen.number)
        try:
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        except RuntimeError:  # another worker reaped it first
            continue
        if requeue:
            attrs = {k: v for k, v in frozen.user_attrs.items() if k in ("run",)}
            study.enqueue_trial(dict(frozen.params), user_attrs=attrs or None)
        reaped.append(frozen.number)
    return reaped


def counts(study) -> dict:
    """Trials by outcome. ``done`` (what ``--n-trials`` counts) is complete + pruned: a failed trial
    learnt nothing about its point, and an interrupted one was re-enqueued."""
    optuna = _optuna()
    state = optuna.trial.TrialState
    out = {"complete": 0, "pruned": 0, "failed": 0, "running": 0, "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == state.COMPLETE:
            out["complete"] += 1
        elif t.state == state.PRUNED:
            out["pruned"] += 1
        elif t.state == state.RUNNING:
            out["running"] += 1
        elif t.state == state.WAITING:
            out["waiting"] += 1
        elif t.state == state.FAIL and not any(t.user_attrs.get(k) is not None for k in NOT_RUN):
            out["failed"] += 1
    out["done"] = out["complete"] + out["pruned"]  # failed trials searched nothing: they do not count
    return out


class ProgressLine:
    """One status line that rewrites itself on a terminal (a new line per update in a log file)."""

    def __init__(self, stream=None, min_interval: float = 0.0):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval, self.last, self.text = min_interval, 0.0, ""

    def show(self, text: str, force: bool = False):
        if text == self.text or (not force and time.time() - self.last < self.min_interval):
            return
        self.text, self.last = text, time.time()
        self.stream.write(("\r\x1b[K" + text) if self.tty else text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty and self.text:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class Workers:
    """What the workers of one sweep or matrix share, as this worker sees it: the storage, how long a
    silent worker's trial still counts as alive, and this worker's progress line."""

    storage: Any
    stale_after: float = STALE_AFTER
    progress: ProgressLine | None = None


def run_queue(storage, study_name: str, keys: list[str], work, stale_after: float = STALE_AFTER,
              progress: ProgressLine | None = None, label: str = "runs",
              finished: Callable[[str], bool] | None = None) -> dict[str, float]:
    """Run each of ``keys`` exactly once across all workers sharing ``storage``, in the order of ``keys``.

    ``work(key) -> float`` does one run and returns its score. Runs already COMPLETE are skipped;
    interrupted ones are requeued. ``finished(key)`` says whether a run's result is still there: a
    COMPLETE run whose result was deleted (to run it again) is queued again. Returns ``{key: score}``
    of every completed run (all workers').
    """
    optuna = _optuna()
    state = optuna.trial.TrialState
    study = load_study(storage, study_name)
    reap_stale(study, storage, stale_after)
    wanted = set(keys)
    # entries whose result is gone: they neither claim their run nor own its new entry
    gone = {t.number for t in study.get_trials(deepcopy=False, states=(state.COMPLETE,))
            if finished is not None and t.user_attrs.get("run") in wanted and not finished(t.user_attrs["run"])}
    claimed = {t.user_attrs.get("run") for t in study.get_trials(deepcopy=False)
               if t.state in (state.COMPLETE, state.RUNNING, state.WAITING) and t.number not in gone}
    for key in keys:
        if key not in claimed:
            study.enqueue_trial({}, user_attrs={"run": key})
    superseded = _queue_in_order(study, keys)
    while True:
        stop_if_signalled()
        if not any(t.user_attrs.get("run") in wanted for t in study.get_trials(deepcopy=False, states=(state.WAITING,))):
            break
        trial = study.ask()
        key = trial.user_attrs.get("run")
        if key is None:  # another worker took the last waiting run between our look and our ask
            trial.set_user_attr("empty_queue", True)
            study.tell(trial, state=state.FAIL)
            continue
        # hand back an entry queued in an older order (the same run waits again further on), or a run of
        # another matrix sharing this queue (queued again for it)
        if trial.number in superseded or key not in wanted:
            trial.set_user_attr("handed_back", True)
            study.tell(trial, state=state.FAIL)
            if key not in wanted:
                study.enqueue_trial({}, user_attrs={"run": key})
            continue
        owner = min((t.number for t in study.get_trials(deepcopy=False, states=(state.RUNNING, state.COMPLETE))
                     if t.user_attrs.get("run") == key and t.number not in gone), default=trial.number)
        if owner != trial.number:  # the same run was enqueued twice by workers starting together
            trial.set_user_attr("duplicate_of", owner)
            study.tell(trial, state=state.FAIL)
            continue
        stamp(trial)
        if progress:
            progress.show(f"[{label}] {key} ...", force=True)
        try:
            value = work(key)
        except BaseException:
            trial.set_user_attr("interrupted", True)
            study.tell(trial, state=state.FAIL)
            study.enqueue_trial({}, user_attrs={"run": key})
            raise
        study.tell(trial, float(value))
        if progress:
            c = {k: 0 for k in ("complete", "running")}
            for t in study.get_trials(deepcopy=False, states=(state.COMPLETE, state.RUNNING)):
                if t.user_attrs.get("run") in wanted and t.number not in gone:
                    c["complete" if t.state == state.COMPLETE else "running"] += 1
            progress.show(f"[{label}] {c['complete']}/{len(wanted)} done, {c['running']} running, "
                          f"{len(wanted) - c['complete'] - c['running']} left", force=True)
    return {t.user_attrs["run"]: t.value for t in study.get_trials(deepcopy=False, states=(state.COMPLETE,))
            if t.user_attrs.get("run") in wanted and t.number not in gone}


def _queue_in_order(study, keys: list[str]) -> set[int]:
    """Waiting runs follow ``keys``' order: when they were queued in another order (a plan reordered
    since), each is queued again in this order and the numbers of the old entries are returned, for
    the worker to hand back when Optuna, which hands out the oldest waiting trial first, gives it one.
    The new entries are queued before any old one is dropped, so the queue never looks empty to
    another worker; a run that one takes meanwhile from the old entries is caught as a duplicate."""
    state = _optuna().trial.TrialState
    place = {key: n for n, key in enumerate(keys)}
    waiting = [t for t in study.get_trials(deepcopy=False, states=(state.WAITING,)) if t.user_attrs.get("run") in place]
    pending = [t.user_attrs["run"] for t in waiting]
    if pending == sorted(pending, key=place.__getitem__):
        return set()
    for key in sorted(set(pending), key=place.__getitem__):
        study.enqueue_trial({}, user_attrs={"run": key})
    return {t.number for t in waiting}


def export_csv(study, path: Path) -> Path:
    """The study's trials, one row each: number, state, value, params, per-step dev F1, timings."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "datetime_start": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "",
               "duration_s": round(t.duration.total_seconds(), 1) if t.duration else ""}
        row.update({f"param_{k}": v for k, v in t.params.items()})
        row["intermediate_dev_f1"] = " ".join(f"{step}:{v:.4f}" for step, v in sorted(t.intermediate_values.items()))
        for key in ("trainable_params", "train_seconds", "flags", "interrupted", "error", "duplicate_of", "run"):
            if key in t.user_attrs:
                row[key] = t.user_attrs[key]
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path
