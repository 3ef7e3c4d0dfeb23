"""Small helpers every layer may use: atomic writes, hashing, device choice, the eval-mode context.

Nothing here knows about models, suites or rows; it imports only the standard library and torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result over ``path``, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists (recursively), as JSON would store it."""
    return json.loads(json.dumps(value, default=list))


def stable_hash(value: Any, length: int = 16) -> str:
    """Hex SHA-256 of the canonical JSON of ``value`` (sorted keys), cut to ``length`` characters.

    Python's ``hash()`` is salted per process, so anything stored on disk is keyed with this instead.
    """
    text = json.dumps(value, sort_keys=True, default=list, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_device(device: str) -> str | None:
    """Why ``device`` cannot be used here, or None when it can (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        return f"{device!r} is not a device; use auto, cpu, cuda, cuda:N or mps."
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"{device!r} was asked for, but CUDA is not available on this machine; use auto or cpu."
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return f"{device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
    if device == "mps" and not torch.backends.mps.is_available():
        return "'mps' was asked for, but MPS is not available on this machine; use auto or cpu."
    return None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU.

    Raises:
        ValueError: For a string that names no device, or a device this machine does not have.
    """
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = check_device(device)
    if problem:
        raise ValueError(f"device {problem}")
    return torch.device(device)


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Put ``module`` in eval mode (no latent noise, running batch-norm statistics) and restore its mode after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def check_writable(folder: str | Path, what: str, min_free_mb: float = 50.0) -> str | None:
    """Why results cannot be written under ``folder``, or None when they can.

    Creates the folder if needed, writes and removes a probe file, and asks for ``min_free_mb`` of free space, so a
    run fails before any compute rather than after an hour of it.
    """
    folder = Path(folder)
    try:
        if folder.exists() and not folder.is_dir():
            return f"{what} {folder} is a file, not a folder; choose another path."
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".aebench-probe-")
        os.close(fd)
        os.remove(probe)
        free_mb = _free_mb(folder)
    except OSError as err:
        return f"{what} {folder} is not writable ({err.strerror or err}); choose another path or fix its permissions."
    if free_mb < min_free_mb:
        return (f"{what} {folder} has only {free_mb:.0f} MB free (at least {min_free_mb:.0f} MB needed); free some "
                "space.")
    return None


def _free_mb(folder: Path) -> float:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize / 2**20


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which a scheduler such as SLURM sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def set_threads(threads: int | None = None, workers: int = 1) -> int:
    """Set torch's intra-op threads: ``threads``, else ``$OMP_NUM_THREADS``, else the cores divided among ``workers``.

    More threads than cores (several processes each taking every core) makes torch's threads wait for each other:
    an attack measured 482 s instead of tens of seconds that way. Returns the number set.

    Raises:
        ValueError: For a thread count below 1.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}.")
    from_environment = os.environ.get("OMP_NUM_THREADS", "")
    if threads is None and from_environment.isdigit() and int(from_environment) >= 1 and workers == 1:
        threads = int(from_environment)  # the scheduler's (or the user's) choice wins over counting cores
    count = threads if threads is not None else max(1, available_cores() // max(1, workers))
    torch.set_num_threads(count)
    return count


@contextlib.contextmanager
def file_lock(path: str | Path, wait: bool) -> Iterator[bool]:
    """An exclusive lock on ``path`` (created if needed), held while the block runs; yields whether it was taken.

    With ``wait`` the call blocks until the lock is free; without, it yields False at once when another process
    holds it. The operating system drops the lock when its process dies, so a killed run never leaves one behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


PARENT_POLL_SECONDS = 1.0
"""How often a ``--jobs`` worker checks that the process that started it is still alive."""


def exit_with_parent(poll: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """End this process soon after its parent ends, however the parent ended.

    A worker of ``aebench run --jobs K`` whose parent is killed (``kill PID``, a closed terminal, an out-of-memory
    kill) would otherwise run on unseen, holding its cores and its measurement locks. Its finished measurements are
    already on disk; the one it was computing is computed again by the next run. The check is that the parent
    process id changes, which it does when the orphan is adopted (POSIX); nothing Linux-specific is needed.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)  # no cleanup handlers: they could wait on work the dead parent was to collect

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
