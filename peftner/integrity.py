"""Integrity of what peftner reads back and writes: weight files, checksums, OS errors.

A weight file that is missing, truncated, corrupt or holds NaN/inf must stop a load with one line
naming the file, before it can quietly turn into wrong predictions (PEFT fills missing adapter
weights with fresh ones and only warns). Checkpoints carry SHA-256 checksums of their files so a
resume can tell a complete-but-corrupted checkpoint from a good one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from peftner.errors import PeftnerError

CHECKSUMS = "checksums.json"


def read_weights(path) -> dict:
    """Every tensor of a safetensors file, checked: readable, complete, finite.

    Raises :class:`PeftnerError` naming the file.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise PeftnerError(f"{path}: weights file is missing" if not path.exists()
                           else f"{path}: is a directory, expected a safetensors weights file")
    try:
        state = load_file(str(path))
    except SafetensorError as err:
        raise PeftnerError(f"{path}: truncated or corrupt safetensors file ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise PeftnerError(f"{path}: cannot be read ({os_reason(err)})") from None
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor.float()).all():
            raise PeftnerError(f"{path}: tensor {key} holds NaN or infinite values; these weights cannot "
                               "give meaningful predictions (retrain, or use an earlier checkpoint)")
    return state


def load_error_line(err: Exception) -> str:
    """The informative line of a torch/PEFT load error (the ``size mismatch for ...`` one when there is one)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("size mismatch")), lines[0] if lines else type(err).__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(directory: Path):
    """``checksums.json``: the SHA-256 of every other file of ``directory`` (a checkpoint)."""
    sums = {p.name: file_sha256(p) for p in sorted(Path(directory).iterdir())
            if p.is_file() and p.name != CHECKSUMS}
    (Path(directory) / CHECKSUMS).write_text(json.dumps(sums, indent=1), encoding="utf-8")


def checksum_problem(directory: Path) -> str | None:
    """Why ``directory`` fails its checksums (None when it passes, or predates checksums)."""
    file = Path(directory) / CHECKSUMS
    if not file.is_file():
        return None
    try:
        sums = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(sums, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as err:
        return f"{CHECKSUMS} is unreadable ({err})"
    for name, digest in sums.items():
        path = Path(directory) / name
        if not path.is_file():
            return f"{name} is missing"
        try:
            if file_sha256(path) != digest:
                return f"{name} does not match its checksum (corrupted)"
        except OSError as err:
            return f"{name} cannot be read ({os_reason(err)})"
    return None


def os_reason(err: OSError) -> str:
    """A short lower-case reason for an OS error ("no space left on device", "permission denied")."""
    if err.errno == errno.ENOSPC:
        return "no space left on device"
    return (err.strerror or str(err)).lower()


def write_json_atomic(path, data: dict) -> None:
    """``data`` as indented JSON at ``path``, through :func:`atomic_output` (never half a file)."""
    with atomic_output(path) as handle:
        handle.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def os_error_message(err: OSError, fallback: str = "") -> str:
    """``PATH: reason`` for an OS error, the form of every peftner error message."""
    where = err.filename or fallback
    return f"{where}: {os_reason(err)}" if where else os_reason(err)


@contextmanager
def atomic_output(path, mode: str = "w"):
    """Open ``path`` for writing through a temporary file renamed into place when the block succeeds.

    An error (disk full, an exception of the caller) leaves an existing ``path`` untouched and no
    partial file behind. OS errors become a :class:`PeftnerError` naming ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise PeftnerError(f"{path}: is a directory, expected an output file")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        os.replace(tmp, path)
    except OSError as err:
        raise PeftnerError(f"{path}: cannot write ({os_reason(err)})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def check_writable_file(path) -> None:
    """Refuse an output file path early (before a model loads): a directory, or no writable parent."""
    path = Path(path)
    if path.is_dir():
        raise PeftnerError(f"{path}: is a directory, expected an output file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise PeftnerError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PeftnerError(f"{path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise PeftnerError(f"{path}: file is not writable")


def _relation(output: Path, source: Path) -> str | None:
    """How ``output`` and ``source`` overlap: "same", "source inside", "output inside", or None."""
    output, source = output.resolve(), source.resolve()
    if output == source:
        return "same"
    try:
        if output.exists() and os.path.samefile(output, source):  # a hard link or bind mount
            return "same"
    except OSError:
        pass
    if output in source.parents:
        return "source inside"
    if source in output.parents:
        return "output inside"
    return None


def refuse_clobber(output, inputs: dict, way_out: str) -> None:
    """Refuse an output path that is, holds, or lies inside one of ``inputs`` (``{"--input": path}``,
    existing paths only): no output may overwrite what the same command reads. ``None`` and ``-``
    (standard streams) are skipped."""
    if output in (None, "-"):
        return
    output = Path(output)
    for flag, source in inputs.items():
        if source in (None, "-", "") or not Path(source).exists():
            continue
        relation = _relation(output, Path(source))
        if relation == "same":
            raise PeftnerError(f"{flag} {source} is also the output {output}, which would overwrite it; {way_out}")
        if relation == "source inside":
            raise PeftnerError(f"{flag} {source} lies inside the output {output}, which is replaced; {way_out}")
        if relation == "output inside":
            raise PeftnerError(f"the output {output} lies inside {flag} {source}, which it would change; {way_out}")


LOCK_FILE = ".peftner.lock"


@contextmanager
def exclusive_output(directory, flag: str = "--output-dir"):
    """Hold ``directory`` for one run: a second run writing into the same folder at the same time
    would interleave checkpoints and replace the first one's adapter, so it is refused in one line.

    An advisory ``flock`` on ``DIRECTORY/.peftner.lock``: released when the run ends, also when its
    process dies, so a killed run never leaves the folder blocked. (Where the platform has no
    ``fcntl``, nothing is held.)
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    import socket

    path = Path(directory) / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise PeftnerError(f"{directory}: another run is writing into this folder ({holder}); wait for it to "
                           f"end, or choose another {flag}") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def previous_copy(directory: Path) -> Path:
    return Path(directory).with_name(Path(directory).name + ".previous")


def set_aside(directory) -> None:
    """Move an existing ``directory`` out of the way before it is rewritten (see :func:`restore_previous`)."""
    directory, previous = Path(directory), previous_copy(directory)
    if previous.exists():  # left by a run that died before it could clean up: that copy is the good one
        if directory.exists():
            shutil.rmtree(directory)
        return
    if directory.exists():
        os.replace(directory, previous)


def restore_previous(directory) -> bool:
    """After a failed rewrite: put the set-aside copy back (dropping the partial one). True if restored."""
    directory, previous = Path(directory), previous_copy(directory)
    if not previous.exists():
        return False
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
    os.replace(previous, directory)
    return True


def drop_previous(directory) -> None:
    """The rewrite succeeded: the set-aside copy goes."""
    shutil.rmtree(previous_copy(directory), ignore_errors=True)
