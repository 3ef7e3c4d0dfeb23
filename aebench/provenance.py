"""Where a number came from: package versions, the git commit, the device, and the record of each run.

Every ``aebench run`` that computes something keeps ``OUTPUT/runs/<run_id>.json`` (and a copy as
``OUTPUT/run.json``, the latest such run): start and end time, the command line, the git commit and whether the
tree had local changes, package versions, the device, and for each model its checkpoint and SHA-256. Rows carry the
run id, not a copy of all this. A run that finds every measurement finished leaves no record.
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


SOURCE_PATHS = ("aebench", "baselines", "pyproject.toml")
"""The parts of the repository whose local changes make a run's commit "dirty"."""


@functools.lru_cache(maxsize=1)
def git_hash() -> str | None:
    """Commit of the aebench source tree, suffixed ``-dirty`` with local changes to :data:`SOURCE_PATHS`.

    None outside git.
    """
    return git_hash_at(Path(__file__).resolve().parent.parent)


def git_hash_at(root: Path) -> str | None:
    """:func:`git_hash` of the repository at ``root``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        # Only the code and recipes decide numbers: rows and records a run writes into a tracked results folder
        # (or another run writes beside it) must not mark the next run's tree as changed.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS], cwd=root,
            capture_output=True, text=True, timeout=5, check=True,
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


def write_run_record(output: Path, record: dict[str, Any], *, latest: bool = False) -> None:
    """Write ``runs/<run_id>.json`` atomically; with ``latest``, also its copy ``run.json``.

    ``run.json`` is the latest run that computed something: the runner passes ``latest`` only at the end of a run
    that did work, so that a rerun which finds everything done does not replace the record of the run that did it.
    """
    from aebench.utils import atomic_write_text

    text = json.dumps(record, indent=2) + "\n"
    atomic_write_text(output / "runs" / f"{record['run_id']}.json", text)
    if latest:
        atomic_write_text(output / "run.json", text)


def drop_run_record(output: Path, record: dict[str, Any]) -> None:
    """Remove the record of a run that computed nothing (every measurement was finished already)."""
    (output / "runs" / f"{record['run_id']}.json").unlink(missing_ok=True)


def recorded_models(output: Path) -> dict[str, Any]:
    """Per cell, the checkpoint entry of the latest run that used it, over every record in ``runs/``.

    A suite built up by several runs (``--model``, shards, a resumed run) has each model in the record of the run
    that measured it, not necessarily in ``run.json``. Run ids sort by start time, so later runs win.
    """
    models: dict[str, Any] = {}
    records = sorted((output / "runs").glob("*.json")) or [output / "run.json"]
    for path in records:
        try:
            models.update(json.loads(path.read_text()).get("models") or {})
        except (OSError, ValueError):  # a record cut short (a killed run) holds nothing to trust
            continue
    return models
