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


_stop_requests: list[str] = []  # what interrupted this process (a signal's message): see stop_if_signalled


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler or ``kill`` stopping a run) unwinds like Ctrl-C: the same clean-up runs
    (a tuning worker hands its trial back, a half-written adapter is put back) and the same one line
    ends the command. Only in the main thread, where Python delivers signals. Both signals are also
    recorded, for :func:`stop_if_signalled`."""
    import signal
    import threading

    def handler(signum, frame):
        message = "" if signum == signal.SIGINT else f"signal {signal.Signals(signum).name}"  # "" reads Ctrl-C
        _stop_requests.append(message)
        raise KeyboardInterrupt(message)

    if threading.current_thread() is threading.main_thread():
        _stop_requests.clear()
        signal.signal(signal.SIGTERM, handler)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored (nohup, &)
            signal.signal(signal.SIGINT, handler)


def stop_if_signalled() -> None:
    """Raise the interrupt again where a long loop looks (every training step and evaluation batch).
    A signal handler that runs inside a finaliser (a ``__del__`` the garbage collector calls mid-step,
    filelock's for one) cannot raise: Python prints "Exception ignored" and goes on, and the run would
    train on past its SIGTERM or Ctrl-C (seen: a tune worker still training 13 minutes after SIGTERM)."""
    if _stop_requests:
        raise KeyboardInterrupt(_stop_requests[-1])


INTERRUPTED_STATUS = 130  # what shells report for a command ended by Ctrl-C (128 + SIGINT)


def interrupted_line(err: KeyboardInterrupt, advice: str = "") -> str:
    """The one line a command ends with when interrupted: ``peftner: interrupted (Ctrl-C)[; advice]``."""
    return f"peftner: interrupted ({str(err) or 'Ctrl-C'})" + (f"; {advice}" if advice else "")
