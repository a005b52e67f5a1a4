"""User-facing errors.

Anything a user can fix (a bad file, a wrong flag) raises :class:`PeftnerError`; the CLI and the
recipes print its one-line message and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import argparse


class PeftnerError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class DataError(PeftnerError):
    """A problem in a data file, located by file and (where it applies) line number."""

    def __init__(self, path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag as a one-line :class:`PeftnerError` (usage stays in --help), and
    takes whole option names only: an abbreviation (``--lear``) kept in a run's recorded command, or in a
    suite's report, would change meaning or stop parsing once another flag shares its start."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise PeftnerError(message)


class OptionError(PeftnerError, ValueError):
    """A bad value of one option. Also a ``ValueError``: PEFT config classes raise those."""


def require(ok: bool, option: str, requirement: str, value) -> None:
    """Raise ``--OPTION must be REQUIREMENT, got VALUE`` unless ``ok``: one wording for every option check."""
    if not ok:
        raise OptionError(f"--{option.replace('_', '-')} must be {requirement}, got {value!r}")


_swallowed: list[KeyboardInterrupt] = []  # interrupts raised where Python could not raise them: see stop_if_signalled


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler or ``kill`` stopping a run) unwinds like Ctrl-C: the same clean-up runs
    (a tuning worker hands its trial back, a half-written adapter is put back) and the same one line
    ends the command. Only in the main thread, where Python delivers signals. An interrupt that
    lands in a finaliser is kept for :func:`stop_if_signalled` instead of printed."""
    import signal
    import sys
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, handler)
    if not getattr(sys.unraisablehook, "keeps_interrupts", False):
        previous = sys.unraisablehook

        def keep_interrupts(unraisable):
            if isinstance(unraisable.exc_value, KeyboardInterrupt):
                _swallowed.append(unraisable.exc_value)
            else:
                previous(unraisable)

        keep_interrupts.keeps_interrupts = True
        sys.unraisablehook = keep_interrupts


def stop_if_signalled() -> None:
    """Raise, where a long loop looks (every training step and evaluation batch, every trial and
    queued run), an interrupt Python could not raise: a SIGTERM or Ctrl-C whose handler ran inside a
    finaliser (a ``__del__`` the garbage collector calls mid-step, filelock's for one) is only
    printed as "Exception ignored", and the run would train on (seen: a tune worker still training
    13 minutes after its SIGTERM)."""
    if _swallowed:
        raise KeyboardInterrupt(*_swallowed.pop().args)


INTERRUPTED_STATUS = 130  # what shells report for a command ended by Ctrl-C (128 + SIGINT)


def interrupted_line(err: KeyboardInterrupt, advice: str = "") -> str:
    """The one line a command ends with when interrupted: ``peftner: interrupted (Ctrl-C)[; advice]``."""
    return f"peftner: interrupted ({str(err) or 'Ctrl-C'})" + (f"; {advice}" if advice else "")
