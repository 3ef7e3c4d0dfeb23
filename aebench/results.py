"""Tidy result rows: one row per (measurement, metric, trial), one JSONL file per measurement, written atomically.

A run folder holds ``cells/<cell>/<measurement>.jsonl`` (the rows), ``<measurement>.error.json`` for a
measurement that failed, ``<measurement>.examples.npz`` (example images of an attack, for Figure 3) and
``<measurement>.values.npz`` (each metric per trial and image, for the report's bootstrap intervals). Tables and
figures are rendered from these files alone, so re-rendering never re-runs an attack.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.utils import atomic_write_text

CELLS_DIR = "cells"


class ResultsError(ValueError):
    """A results file is unreadable; the message names it."""


class NonFiniteResultError(ValueError):
    """A measurement produced NaN or infinity, which must never become a number in a table."""


@dataclass(frozen=True)
class Row:
    """One number: a metric of one measurement of one model, for one trial.

    Attributes:
        suite: Suite name.
        version: Suite version.
        run_id: The run that computed it (``OUTPUT/runs/<run_id>.json`` holds the provenance).
        dataset: Dataset name.
        model: The suite entry's label.
        seed: The cell's seed.
        measurement: Measurement name, e.g. ``attack-latent-pgd-1``, ``fidelity-fd_classifier``.
        attack: ``latent``/``max_damage``, or ``none`` for per-model numbers.
        optimizer: The attack's optimizer, or ``none``.
        budget: λ, or 0.
        trial: Trial index (0 for per-model numbers).
        metric: Metric name.
        value: The number (finite).
        higher_is_better: Direction of the metric.
        wall_time: Seconds the measurement took.
        device: Where it ran.
        measurement_key: Hash of the model, the measurement's settings and the code that computed it.
        settings_key: The same without the code, to recognise stale work (``--reuse-stale``).
        reused_stale: The row was computed by other code than the current one and kept on request.
        settings: The effective settings: model, training, model arguments, checkpoint, measurement.
    """

    suite: str
    version: str
    run_id: str
    dataset: str
    model: str
    seed: int
    measurement: str
    attack: str
    optimizer: str
    budget: float
    trial: int
    metric: str
    value: float
    higher_is_better: bool
    wall_time: float
    device: str
    measurement_key: str
    settings_key: str
    reused_stale: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """A NaN or infinite value is refused here, so it can only ever become a failed measurement."""
        if not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise NonFiniteResultError(f"{self.measurement}: metric {self.metric!r} (trial {self.trial}) is "
                                       f"{self.value!r}; the model's outputs are not finite.")


ROW_FIELDS = tuple(f.name for f in fields(Row))


def cell_dir(output: str | Path, cell_id: str) -> Path:
    """The folder of one cell's measurement files."""
    return Path(output) / CELLS_DIR / cell_id


def rows_path(output: str | Path, cell_id: str, measurement: str) -> Path:
    """Where a measurement's rows live."""
    return cell_dir(output, cell_id) / f"{measurement}.jsonl"


def error_path(output: str | Path, cell_id: str, measurement: str) -> Path:
    """Where a failed measurement's error record lives."""
    return cell_dir(output, cell_id) / f"{measurement}.error.json"


def examples_path(output: str | Path, cell_id: str, measurement: str) -> Path:
    """Where an attack measurement keeps its example images."""
    return cell_dir(output, cell_id) / f"{measurement}.examples.npz"


def per_image_path(output: str | Path, cell_id: str, measurement: str) -> Path:
    """Where an attack measurement keeps each metric's value per (trial, image), for bootstrap intervals."""
    return cell_dir(output, cell_id) / f"{measurement}.values.npz"


def write_rows(path: str | Path, rows: Iterable[Row]) -> Path:
    """Write ``rows`` as JSON lines, all at once (a crash leaves either the old file or the new one)."""
    text = "".join(json.dumps(asdict(row)) + "\n" for row in rows)
    atomic_write_text(path, text)
    return Path(path)


def read_measurement(path: str | Path) -> list[Row]:
    """The rows of one measurement file.

    Raises:
        ResultsError: Naming the file and the line, if any line is not a complete row.
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(Row(**json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as err:
            raise ResultsError(f"{path}, line {number}: not a result row ({err}); delete the file and rerun "
                               "`aebench run` to recompute that measurement.") from err
    if not rows:
        raise ResultsError(f"{path} holds no rows; delete it and rerun `aebench run` to recompute it.")
    return rows


def read_rows(run_dir: str | Path, problems: list[str] | None = None) -> pd.DataFrame:
    """All rows of a run folder as one DataFrame (empty with the right columns if there are none).

    Args:
        run_dir: The output folder of ``aebench run``.
        problems: Where to append a message per unreadable file (which is then skipped); None raises instead.

    Raises:
        FileNotFoundError: If ``run_dir`` has no ``cells/`` folder.
        ResultsError: For an unreadable file, when ``problems`` is None.
    """
    cells = Path(run_dir) / CELLS_DIR
    if not cells.is_dir():
        raise FileNotFoundError(f"{run_dir} has no {CELLS_DIR}/ folder; is it the output folder of `aebench run`?")
    rows: list[dict[str, Any]] = []
    for path in sorted(cells.glob("*/*.jsonl")):
        try:
            rows += [asdict(r) for r in read_measurement(path)]
        except ResultsError as err:
            if problems is None:
                raise
            problems.append(str(err))
    return pd.DataFrame(rows, columns=list(ROW_FIELDS))


def read_error(path: str | Path) -> dict[str, Any] | None:
    """A measurement's error record, or None when it is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
