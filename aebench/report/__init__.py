"""Render a run folder's rows as the paper's tables and figures, plus one merged ``results.csv``.

:mod:`aebench.report.tables` renders Tables 1–3 (LaTeX + Markdown), :mod:`aebench.report.figures` Figures 2–3 and the
trade-off plot. Only the rows of the run's current plan count (``suite.json`` holds each measurement's key): rows
of models or settings no longer in the suite stay on disk but out of the tables. A measurement the plan asks for
without rows shows as ``failed`` (it has an error record) or ``missing`` (not run yet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.paper import paper_results_path
from aebench.report.figures import figure_attack_loss, figure_examples, figure_tradeoff
from aebench.report.tables import (
    FAILED,
    MISSING,
    TABLE1,
    TABLE2,
    Column,
    Layout,
    TableData,
    build_table,
    summarise,
    table3_layout,
    to_latex,
    to_markdown,
)
from aebench.results import error_path, read_error, read_rows

__all__ = ["TABLE1", "TABLE2", "Column", "Layout", "ReportResult", "TableData", "build_table", "load_paper_results",
           "render_report", "summarise", "table3_layout", "to_latex", "to_markdown"]

LAYOUTS = {"table1": TABLE1, "table2": TABLE2}  # table3's columns depend on the datasets


@dataclass
class ReportResult:
    """What :func:`render_report` wrote, and what it could not read or show."""

    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def load_paper_results(name: str | None) -> pd.DataFrame | None:
    """The reported numbers shipped in ``aebench/paper/<name>.csv`` (or a CSV path), or None."""
    if not name:
        return None
    path = paper_results_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"Paper results {name!r} not found at {path}.")
    return pd.read_csv(path)


def _plan(run_dir: Path) -> dict[str, Any]:
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


def expected_status(run_dir: Path, rows: pd.DataFrame, plan: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """``(dataset, model, measurement) → failed | missing`` for planned measurements without current rows."""
    have = set(zip(rows.dataset, rows.model, rows.measurement, strict=True)) if len(rows) else set()
    status = {}
    for cell_id, cell in (plan.get("cells") or {}).items():
        for name, keys in cell["measurements"].items():
            where = (cell["dataset"], cell["model"], name)
            if where in have:
                continue
            error = read_error(error_path(run_dir, cell_id, name))
            status[where] = FAILED if error is not None and error.get("measurement_key") == keys["key"] else MISSING
    return status


def merged_results(rows: pd.DataFrame) -> pd.DataFrame:
    """All rows with their effective settings spread into columns (``settings.training.epochs``, ...)."""
    if rows.empty:
        return rows
    settings = pd.json_normalize(list(rows.settings)).add_prefix("settings.")
    return pd.concat([rows.drop(columns=["settings"]).reset_index(drop=True), settings], axis=1)


def _write_table(table: TableData, stem: Path) -> list[Path]:
    stem.with_suffix(".tex").write_text(to_latex(table))
    stem.with_suffix(".md").write_text(f"**{table.title}**\n\n" + to_markdown(table))
    return [stem.with_suffix(".tex"), stem.with_suffix(".md")]


def render_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportResult:
    """Write the suite's tables (LaTeX + Markdown), figures and ``results.csv`` into ``out_dir``.

    Args:
        run_dir: The output folder of ``aebench run``.
        out_dir: Where to write (default ``RUN_DIR/report``).

    Raises:
        FileNotFoundError: If the folder holds no result rows and no plan.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "report"
    result = ReportResult()
    plan = _plan(run_dir)
    rows = current_rows(read_rows(run_dir, result.problems), plan)
    if rows.empty and not plan:
        raise FileNotFoundError(f"{run_dir} holds no result rows yet; run `aebench run SUITE` first.")
    meta = plan.get("suite") or {}
    status = expected_status(run_dir, rows, plan)
    result.failed = sorted("/".join(k) for k, v in status.items() if v == FAILED)
    result.missing = sorted("/".join(k) for k, v in status.items() if v == MISSING)
    paper = load_paper_results(meta.get("paper_results"))
    summary = summarise(rows)
    out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out / "summary.csv", index=False)
    merged_results(rows).to_csv(out / "results.csv", index=False)
    result.written += [out / "summary.csv", out / "results.csv"]
    datasets = list(dict.fromkeys(list(summary.dataset) + [k[0] for k in status]))
    optimizers = [o for o in dict.fromkeys(list(summary.optimizer) + [k[2].split("-", 3)[2] for k in status
                                                                      if k[2].startswith("attack-")]) if o != "none"]
    order = [m["label"] for m in meta.get("models", [])]
    budget = float((meta.get("downstream") or {}).get("budget", 1.0))
    for name in meta.get("tables") or ["table1"]:
        for optimizer in optimizers:
            reported = None if optimizer == "noise" else paper  # the paper's numbers are for real attacks
            if name == "table3":
                table = build_table(summary, table3_layout(datasets, budget), optimizer, None, reported, order, status)
                result.written += _write_table(table, out / f"table3_{optimizer}")
                continue
            for dataset in datasets:
                table = build_table(summary, LAYOUTS[name], optimizer, dataset, reported, order, status)
                result.written += _write_table(table, out / f"{name}_{dataset}_{optimizer}")
    for dataset in datasets:
        for optimizer in optimizers:
            result.written += figure_attack_loss(summary, dataset, optimizer, out / f"figure2_{dataset}_{optimizer}")
            if optimizer != "noise":
                result.written += figure_examples(run_dir, dataset, optimizer, out / f"figure3_{dataset}_{optimizer}")
                result.written += figure_tradeoff(summary, dataset, optimizer, out / f"tradeoff_{dataset}_{optimizer}")
    return result
