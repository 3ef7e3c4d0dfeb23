"""Render a run folder's rows as the paper's tables and figures, plus one merged ``results.csv``.

:mod:`aebench.report.tables` renders Tables 1–3 (LaTeX + Markdown), :mod:`aebench.report.figures` Figures 2–3 and the
trade-off plot. Only the rows of the run's current plan count (``suite.json`` holds each measurement's key): rows
of models or settings no longer in the suite stay on disk but out of the tables. A measurement the plan asks for
without rows shows as ``failed`` (it has an error record) or ``missing`` (not run yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aebench.paper import paper_results_path
from aebench.provenance import recorded_models
from aebench.report.context import protocol_lines
from aebench.report.current import current_rows, other_code, read_plan
from aebench.report.figures import figure_attack_loss, figure_examples, figure_tradeoff
from aebench.report.leaderboard import leaderboard, write_leaderboard
from aebench.report.tables import (
    FAILED,
    MISSING,
    TABLE1,
    TABLE2,
    Column,
    Layout,
    TableData,
    build_table,
    measurement_of,
    paper_delta,
    paper_orderings,
    split_by_group,
    summarise,
    table3_layout,
    to_latex,
    to_markdown,
)
from aebench.report.trust import (
    PAPER_MEMBER,
    REACHED,
    WORST,
    WorstCase,
    audit_layout,
    bootstrap_difference,
    load_values,
    order_flags,
    perceptual_layout,
    worst_case,
)
from aebench.results import CELLS_DIR, error_path, read_error, read_rows

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
    other_code: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def load_paper_results(name: str | None) -> pd.DataFrame | None:
    """The reported numbers shipped in ``aebench/paper/<name>.csv`` (or a CSV path), or None."""
    if not name:
        return None
    path = paper_results_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"Paper results {name!r} not found at {path}.")
    return pd.read_csv(path)


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


def _per_image(run_dir: Path, dataset: str, model: str, measurement: str, metric: str) -> np.ndarray | None:
    """A metric's values per (trial, image) for one model, all seeds joined, or None when not stored."""
    parts = []
    for path in sorted((run_dir / CELLS_DIR).glob(f"{dataset}__{model}__s*/{measurement}.values.npz")):
        values = load_values(path)
        if values is None:
            return None
        if metric in values:
            parts.append(values[metric].reshape(-1))
    return np.concatenate(parts) if parts else None


def intervals(table: TableData, run_dir: Path, dataset: str | None, optimizer: str,
              computed: dict[tuple[str, str, str], dict[str, np.ndarray]] | None = None) -> list[str]:
    """For each bold value: its difference to the runner-up with a 95% bootstrap interval over images.

    ``computed`` holds per-image values that no measurement stored (the worst case), by (dataset, model, name).
    """
    computed = computed or {}

    def values(where: str, model: str, name: str, metric: str) -> np.ndarray | None:
        if (where, model, name) in computed:
            return computed[(where, model, name)].get(metric)
        return _per_image(run_dir, where, model, name, metric)

    lines = []
    for index, (column, budget) in enumerate(table.subcolumns):
        best = table.best(index)
        where = column.dataset or dataset
        if best is None or column.attack == "none" or where is None:
            continue
        others = [m for m in table.models if m != best and (m, index) in table.values]
        if not others:
            continue
        # The runner-up is the model nearest to the best (every other is at least as far behind it).
        runner = min(others, key=lambda m: abs(table.values[(m, index)][0] - table.values[(best, index)][0]))
        name = measurement_of(column, optimizer, budget)
        a, b = (values(where, m, name, column.metric) for m in (best, runner))
        if a is None or b is None or a.shape != b.shape:
            continue
        mean, low, high = bootstrap_difference(a, b)
        verdict = "" if low > 0 or high < 0 else " (contains 0: not a clear difference)"
        # The column group names the attack: "MSSSIM(x_r, x_a)" alone is a column of both attacks in Table 1.
        group = f"{column.group}: " if column.group else ""
        label = f"{group}{column.markdown}" + (f" λ={budget:g}" if budget is not None else "")
        lines.append(f"- {label}: {best} − {runner} = {mean:+.3f} [{low:+.3f}, {high:+.3f}]{verdict}")
    return lines


def _write_table(table: TableData, stem: Path, notes: list[str] | None = None,
                 header: list[str] | None = None) -> list[Path]:
    """LaTeX as the paper lays it out; Markdown split by column group, with the comparison to the paper.

    ``header``: lines above the Markdown tables saying what they measured (:func:`protocol_lines`).
    """
    stem.with_suffix(".tex").write_text(to_latex(table))
    text = "".join(line + "\n\n" for line in header or [])
    text += "\n".join(f"**{part.title}**\n\n" + to_markdown(part) for part in split_by_group(table))
    delta = paper_delta(table)
    if delta is not None:
        text += f"\n**{delta.title}**\n\n" + to_markdown(delta)
        orderings = paper_orderings(table)
        if orderings:
            text += "\nOrder of the models, ours against the paper's:\n" + "\n".join(orderings) + "\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    stem.with_suffix(".md").write_text(text)
    return [stem.with_suffix(".tex"), stem.with_suffix(".md")]


def _notes(table: TableData, run_dir: Path, dataset: str | None, optimizer: str,
           computed: dict[tuple[str, str, str], dict[str, np.ndarray]] | None = None) -> list[str]:
    found = intervals(table, run_dir, dataset, optimizer, computed)
    return (["Best against the runner-up, 95% bootstrap interval over the attacked images:", *found]
            if found else [])


def _write_audit(worst: WorstCase, summary: pd.DataFrame, run_dir: Path, out: Path, datasets: list[str],
                 order: list[str], header: Callable[[str | None, str], list[str]] | None = None) -> list[Path]:
    """The attack audit: per dataset and attack kind, the paper's attack beside the worst case, and the order flags."""
    written = []
    audit = pd.concat([summary, summarise(worst.rows)]) if len(worst.rows) else summary
    flags = order_flags(audit)
    for dataset in datasets:
        for attack in ("latent", "max_damage"):
            table = build_table(audit, audit_layout(attack), WORST, dataset, None, order)
            if not table.subcolumns:
                continue
            mine = [f.text() for f in flags if f.dataset == dataset and f.attack == attack]
            notes = ["Order flags (the paper's attack and the worst case order these models differently):",
                     *[f"- {line}" for line in mine]] if mine else ["Order flags: none."]
            notes += _found_by(worst, dataset, attack)
            here = worst.rows[(worst.rows.dataset == dataset) & (worst.rows.attack == attack)]
            if f"attack_loss_{PAPER_MEMBER}" not in set(here.metric):
                notes.append(f"No `{PAPER_MEMBER}` measurement of this attack: add `{{name: {attack}, optimizer: "
                             f"{PAPER_MEMBER}}}` to the suite's attacks to see the paper's attack beside the worst "
                             "case.")
            written += _write_table(table, out / f"audit_{attack}_{dataset}",
                                    notes + _notes(table, run_dir, dataset, WORST, worst.per_image),
                                    header(dataset, WORST) if header else None)
            for optimizer in dict.fromkeys(summary[summary.attack == f"{attack}_msssim"].optimizer):
                table = build_table(summary, perceptual_layout(attack), optimizer, dataset, None, order)
                written += _write_table(table, out / f"perceptual_{attack}_{dataset}_{optimizer}",
                                        _notes(table, run_dir, dataset, optimizer),
                                        header(dataset, optimizer) if header else None)
    return written


def _found_by(worst: WorstCase, dataset: str, attack: str) -> list[str]:
    """Which attack reached the worst case on how many images, per budget."""
    lines = []
    for (where, kind, budget), counts in worst.found_by.items():
        if where == dataset and kind == attack:
            total = counts["images"]
            shares = ", ".join(f"{name} {n}" for name, n in counts.items() if name != "images")
            lines.append(f"- λ={budget:g}: {shares} of {total} attacked images (all models)")
    return ([f"Attacks that reached the worst case (within {REACHED:.1%}), on how many images:", *lines]
            if lines else [])


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
    plan = read_plan(run_dir)
    rows = current_rows(read_rows(run_dir, result.problems), plan)
    if rows.empty and not plan:
        raise FileNotFoundError(f"{run_dir} holds no result rows yet; run `aebench run SUITE` first.")
    meta = plan.get("suite") or {}
    status = expected_status(run_dir, rows, plan)
    result.failed = sorted("/".join(k) for k, v in status.items() if v == FAILED)
    result.missing = sorted("/".join(k) for k, v in status.items() if v == MISSING)
    paper = load_paper_results(meta.get("paper_results"))
    summary = summarise(rows)
    worst = worst_case(rows, run_dir) if len(rows) else WorstCase()
    out.mkdir(parents=True, exist_ok=True)
    # summary.csv carries the worst-case rows too (optimizer "worst"); the tables below keep them to the audit.
    (pd.concat([summary, summarise(worst.rows)]) if len(worst.rows) else summary).to_csv(out / "summary.csv",
                                                                                         index=False)
    merged_results(rows).to_csv(out / "results.csv", index=False)
    models = recorded_models(run_dir)
    result.written += [out / "summary.csv", out / "results.csv",
                       write_leaderboard(out / "leaderboard.json", leaderboard(rows, plan, models))]
    datasets = list(dict.fromkeys(list(summary.dataset) + [k[0] for k in status]))
    optimizers = [o for o in dict.fromkeys(list(summary.optimizer) + [k[2].split("-", 3)[2] for k in status
                                                                      if k[2].startswith("attack-")]) if o != "none"]
    order = [m["label"] for m in meta.get("models", [])]
    budget = float((meta.get("downstream") or {}).get("budget", 1.0))
    result.other_code = other_code(rows)

    def reported_for(optimizer: str) -> pd.DataFrame | None:
        return None if optimizer in ("noise", WORST) else paper  # the paper's numbers are for its own attacks

    def header(dataset: str | None, optimizer: str) -> list[str]:
        return protocol_lines(meta, rows, dataset, optimizer, reported_for(optimizer), result.other_code)

    for name in meta.get("tables") or ["table1"]:
        if name == "audit":
            result.written += _write_audit(worst, summary, run_dir, out, datasets, order, header)
            continue
        for optimizer in optimizers:
            reported = reported_for(optimizer)
            if name == "table3":
                table = build_table(summary, table3_layout(datasets, budget), optimizer, None, reported, order, status)
                result.written += _write_table(table, out / f"table3_{optimizer}",
                                               _notes(table, run_dir, None, optimizer), header(None, optimizer))
                continue
            for dataset in datasets:
                table = build_table(summary, LAYOUTS[name], optimizer, dataset, reported, order, status)
                notes = [] if optimizer == "noise" else _notes(table, run_dir, dataset, optimizer)
                result.written += _write_table(table, out / f"{name}_{dataset}_{optimizer}", notes,
                                               header(dataset, optimizer))
    for dataset in datasets:
        for optimizer in optimizers:
            result.written += figure_attack_loss(summary, dataset, optimizer, out / f"figure2_{dataset}_{optimizer}")
            if optimizer != "noise":
                result.written += figure_examples(run_dir, dataset, optimizer, out / f"figure3_{dataset}_{optimizer}")
                result.written += figure_tradeoff(summary, dataset, optimizer, out / f"tradeoff_{dataset}_{optimizer}")
    result.removed = _remove_leftovers(out, result.written)
    return result


REPORT_PREFIXES = ("table1_", "table2_", "table3_", "audit_", "perceptual_", "figure2_", "figure3_", "tradeoff_")
"""Names of the files a report writes (besides summary.csv, results.csv and leaderboard.json)."""


def _remove_leftovers(out: Path, written: list[Path]) -> list[Path]:
    """Remove the report files this rendering did not write; files of other names are never touched.

    A figure whose naming changed or a table the suite no longer asks for would otherwise stay beside the new ones,
    so that the folder showed more than its rows say now.
    """
    kept = {path.resolve() for path in written}
    removed = []
    for path in sorted(out.iterdir()):
        if path.is_file() and path.name.startswith(REPORT_PREFIXES) and path.resolve() not in kept:
            path.unlink()
            removed.append(path)
    return removed
