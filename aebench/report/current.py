"""Which rows of a run folder count, and which of them the installed aebench would compute differently.

The rows that count are those of the measurements the plan (``suite.json``) names; rows of other measurement or
training code than the installed one are found by recomputing their keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.fingerprint import MEASUREMENT_CODE, measurement_fingerprint, training_fingerprint
from aebench.models.base import MODELS
from aebench.runner.plan import Measurement


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


def other_code(rows: pd.DataFrame) -> list[str]:
    """``dataset/model/measurement`` of every measurement whose rows the installed aebench would not reproduce.

    A plan (``suite.json``) is written by the run that computed the rows, so its keys agree with them even after
    the code has changed. This recomputes each measurement's key from what its rows record (the model's key and the
    measurement's settings) with the installed measurement code, and compares the training-code fingerprint the
    rows record with the installed one for their model. Rows of models aebench does not train (imported or
    in-memory models) are checked for the measurement code only.
    """
    found: list[str] = []
    if not len(rows):
        return found
    training_code: dict[str, str] = {}
    for row in rows.drop_duplicates(["dataset", "model", "seed", "measurement"]).itertuples():
        settings = row.settings if isinstance(row.settings, dict) else {}
        kind = str(row.measurement).split("-", 1)[0]
        model_key = settings.get("training_key") or (settings.get("checkpoint") or {}).get("sha256")
        if kind not in MEASUREMENT_CODE or model_key is None or "measurement" not in settings:
            continue  # rows of an older format: nothing to recompute the key from
        # The key the runner would give it now (the same method, with the installed code's fingerprint).
        expected = Measurement(kind, str(row.measurement), settings["measurement"],
                               measurement_fingerprint(kind)).key(model_key)
        trained, name = settings.get("training_code"), settings.get("model")
        if trained and name in MODELS and name not in training_code:
            training_code[name] = training_fingerprint(MODELS[name])
        if expected != row.measurement_key or (trained and name in training_code and trained != training_code[name]):
            found.append(f"{row.dataset}/{row.model}/{row.measurement}")
    return found
