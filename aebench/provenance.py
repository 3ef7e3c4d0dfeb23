"""Where a number came from: package versions, the git commit, the device, and the record of each run.

Every ``aebench run`` writes ``OUTPUT/runs/<run_id>.json`` (and a copy as ``OUTPUT/run.json``, the latest run): start
and end time, the command line, the git commit and whether the tree had local changes, package versions, the
device, and for each model its checkpoint and SHA-256. Rows carry the run id, not a copy of all this.
"""

from __future__ import annotations

import datetime
import functools
import json
import platform
import secrets
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

_PACKAGES = ("aebench", "torch", "numpy", "scipy", "torchmetrics", "safetensors")


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide aebench's numbers."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@functools.lru_cache(maxsize=1)
def git_hash() -> str | None:
    """Commit of the aebench source tree (suffixed ``-dirty`` with local changes), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def git_state() -> dict[str, Any]:
    """``{"commit": hash or None, "dirty": bool or None}`` of the aebench source tree."""
    full = git_hash()
    if full is None:
        return {"commit": None, "dirty": None}
    return {"commit": full.removesuffix("-dirty"), "dirty": full.endswith("-dirty")}


def device_description(device: Any) -> str:
    """The GPU's name for a CUDA device, else the CPU model (from /proc/cpuinfo where it exists)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{device} ({model}, {torch.get_num_threads()} threads)"


def now() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time plus a random suffix."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run_record(run_id: str, suite_path: str, device: Any) -> dict[str, Any]:
    """The provenance of a run that starts now (``ended`` and ``models`` are filled in as it goes)."""
    return {"run_id": run_id, "suite": suite_path, "started": now(), "ended": None, "command": list(sys.argv),
            "git": git_state(), "versions": package_versions(), "device": device_description(device),
            "platform": platform.platform(), "models": {}, "measurements": {"finished": 0, "skipped": 0, "failed": 0}}


def write_run_record(output: Path, record: dict[str, Any]) -> None:
    """Write ``runs/<run_id>.json`` and its copy ``run.json`` atomically."""
    from aebench.utils import atomic_write_text

    text = json.dumps(record, indent=2) + "\n"
    atomic_write_text(output / "runs" / f"{record['run_id']}.json", text)
    atomic_write_text(output / "run.json", text)
