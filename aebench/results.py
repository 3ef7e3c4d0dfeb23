"""Tidy result rows: one row per measurement, one JSONL file per suite cell, written atomically.

Tables and figures are rendered from these rows alone, so re-rendering never re-runs an attack.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.checkpoint import atomic_write

ROW_FIELDS = (
    "suite", "version", "dataset", "model", "seed", "attack", "optimizer", "budget", "trial", "metric", "value",
    "higher_is_better", "device", "wall_time", "versions", "git", "config_hash",
)
CELLS_DIR = "cells"


def cell_rows_path(output: str | Path, cell_id: str) -> Path:
    """Where a cell's rows live."""
    return Path(output) / CELLS_DIR / f"{cell_id}.jsonl"


def cell_error_path(output: str | Path, cell_id: str) -> Path:
    """Where a failed cell's error is recorded."""
    return Path(output) / CELLS_DIR / f"{cell_id}.error.json"


def write_rows(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines, all at once (a crash leaves either the old file or the new one)."""
    rows = list(rows)
    for row in rows:
        missing = set(ROW_FIELDS) - set(row)
        if missing:
            raise ValueError(f"result row lacks fields {sorted(missing)}: {row}")
    text = "".join(json.dumps({k: row[k] for k in ROW_FIELDS}) + "\n" for row in rows)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))
    return Path(path)


def read_cell_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of one cell file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def read_rows(run_dir: str | Path) -> pd.DataFrame:
    """All rows of a run folder as one DataFrame (empty with the right columns if there are none).

    Raises:
        FileNotFoundError: If ``run_dir`` has no ``cells/`` folder.
    """
    cells = Path(run_dir) / CELLS_DIR
    if not cells.is_dir():
        raise FileNotFoundError(f"{run_dir} has no {CELLS_DIR}/ folder; is it the output folder of `aebench run`?")
    rows = [row for path in sorted(cells.glob("*.jsonl")) for row in read_cell_rows(path)]
    return pd.DataFrame(rows, columns=list(ROW_FIELDS))
