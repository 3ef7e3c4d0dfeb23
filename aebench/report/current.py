"""Which rows of a run folder count: those of the measurements its current plan (``suite.json``) names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd


def read_plan(run_dir: Path) -> dict[str, Any]:
    """The run's plan record (``suite.json``), or an empty dict."""
    path = run_dir / "suite.json"
    return json.loads(path.read_text()) if path.exists() else {}


def current_rows(rows: pd.DataFrame, plan: dict[str, Any]) -> pd.DataFrame:
    """The rows of the plan's measurements: matching keys, or kept stale work that says so."""
    cells = plan.get("cells") or {}
    if not cells:
        return rows
    keys = {m["key"] for c in cells.values() for m in c["measurements"].values()}
    settings = {m["settings_key"] for c in cells.values() for m in c["measurements"].values()}
    keep = rows.measurement_key.isin(keys) | (rows.reused_stale.astype(bool) & rows.settings_key.isin(settings))
    return rows[keep]


