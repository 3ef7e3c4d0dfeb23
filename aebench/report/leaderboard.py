"""A leaderboard of a run, and one table across runs that refuses to compare numbers measured differently.

``leaderboard.json`` (written by ``aebench report``) lists per dataset every model with where it came from, its
checkpoint's SHA-256, each headline number as a number, and the protocol it was measured under. ``aebench compare``
puts several runs side by side only when their protocols agree (attacks, optimizers and their options, budgets,
N × T, seeds, metrics), and otherwise names the setting that differs, as RobustBench keeps one threat model per
table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from aebench.config import differences
from aebench.report.current import current_rows, other_code, read_plan
from aebench.report.tables import summarise
from aebench.results import read_rows

HEADLINE = ("msssim_paper_target_adv_recon", "msssim_paper_recon_adv_recon", "attack_loss", "fd_classifier",
            "fid_inception", "test_recon_mse", "active_units", "certified_radius", "downstream_clean_accuracy",
            "downstream_attacked_accuracy")
"""The metrics a leaderboard entry carries."""


class ProtocolMismatchError(ValueError):
    """Two runs were measured under different protocols; the message names each difference."""


def protocol(suite: dict[str, Any]) -> dict[str, Any]:
    """What decides whether two runs' numbers are comparable."""
    attacks = sorted(({"attack": a["name"], "optimizer": a["optimizer"], "options": a.get("options") or {},
                       "budgets": sorted(a["budgets"])} for a in suite.get("attacks", [])),
                     key=lambda a: (a["attack"], a["optimizer"]))
    return {"attacks": attacks, "n_images": suite.get("n_images"), "n_trials": suite.get("n_trials"),
            "seeds": sorted(suite.get("seeds") or []), "metrics": suite.get("metrics"),
            "noise_baseline": suite.get("noise_baseline")}


def leaderboard(rows: pd.DataFrame, plan: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard of one run (see the module docstring)."""
    suite = plan.get("suite") or {}
    summary = summarise(rows[rows.metric.isin(HEADLINE)]) if len(rows) else pd.DataFrame()
    board: dict[str, Any] = {"suite": suite.get("name"), "protocol": protocol(suite), "datasets": {}}
    for cell_id, cell in (plan.get("cells") or {}).items():
        mine = summary[(summary.dataset == cell["dataset"]) & (summary.model == cell["model"])] if len(summary) \
            else summary
        settings = rows[(rows.dataset == cell["dataset"]) & (rows.model == cell["model"])].settings
        first = settings.iloc[0] if len(settings) else {}
        numbers = {f"{r.metric}/{r.attack}/{r.optimizer}/{r.budget:g}": float(r.mean) for r in mine.itertuples()}
        board["datasets"].setdefault(cell["dataset"], []).append({
            "model": cell["model"], "registry_model": first.get("model"), "source": first.get("source"),
            "checkpoint_sha256": (models.get(cell_id) or {}).get("sha256"), "seed": cell["seed"],
            "training": first.get("training"), "numbers": numbers})
    return board


def compare(run_dirs: list[Path], allow_other_code: bool = False) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The current rows of several runs, models named ``<run>/<model>``, once their protocols agree.

    Args:
        run_dirs: Output folders of ``aebench run``.
        allow_other_code: Accept rows that the installed aebench would compute differently (see
            :func:`~aebench.report.current.other_code`); by default a run holding any is refused, since the same
            protocol under other attack code is not the same measurement.

    Raises:
        ProtocolMismatchError: Naming every setting in which a run differs from the first, or the measurements of
            a run computed by other code.
        FileNotFoundError: For a folder that is not a run.
    """
    frames, reference = [], None
    for run_dir in run_dirs:
        plan = read_plan(run_dir)
        if not plan:
            raise FileNotFoundError(f"{run_dir} has no suite.json; is it the output folder of `aebench run`?")
        mine = protocol(plan["suite"])
        if reference is None:
            reference = (run_dir, mine)
        else:
            changed = differences(reference[1], mine)
            if changed:
                raise ProtocolMismatchError(
                    f"{run_dir} was measured under another protocol than {reference[0]}; its numbers cannot stand "
                    "beside them:\n  " + "\n  ".join(c.replace("(saved)", f"({reference[0].name})")
                                                    .replace("(now)", f"({run_dir.name})") for c in changed))
        rows = current_rows(read_rows(run_dir), plan).copy()
        stale = [] if allow_other_code else other_code(rows)
        if stale:
            raise ProtocolMismatchError(
                f"{run_dir}: {len(stale)} measurement(s) were computed by other code than the installed aebench "
                f"(e.g. {', '.join(stale[:3])}), so they are not this protocol's numbers. Recompute them with "
                f"`aebench run {plan['suite'].get('path', 'SUITE')}` (it recomputes exactly those), or pass "
                "--allow-other-code to compare them anyway.")
        rows["model"] = f"{run_dir.name}/" + rows["model"]
        frames.append(rows)
    return pd.concat(frames, ignore_index=True), reference[1] if reference else {}


def write_leaderboard(path: Path, board: dict[str, Any]) -> Path:
    """Write ``leaderboard.json``."""
    path.write_text(json.dumps(board, indent=2, default=str) + "\n")
    return path
