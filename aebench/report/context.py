"""The lines above every Markdown table that say what it measured, so that a table read alone is not misread.

A table's title names the layout, the data set and the optimizer; these lines add the protocol of Saseendran et al.
(NeurIPS 2022) that the suite fixed (N test images × T trials, seeds, the optimizer's options, training length), where
the paper column's numbers come from, the notation of the column headers, and a warning when some of the numbers
were computed by other code than the installed aebench.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

NOTATION = ("Notation: x is the clean input, x_a = x + δ the adversarial input (‖δ‖₂ ≤ λ), x̃_r and x̃_a the "
            "reconstructions of x and x_a, x_t the latent attack's target. x_r is the reference image: the target x_t "
            "in MSSSIM(x_r, x̃_a) and the clean input x in MSSSIM(x_r, x_a).")


def _epochs(rows: pd.DataFrame, models: list[str]) -> str:
    """``gmm_dae 20, vae 20`` (or one number when all agree); a loaded checkpoint reads ``checkpoint``."""
    found: dict[str, str] = {}
    for model in models:
        settings = rows[rows.model == model].settings
        first = settings.iloc[0] if len(settings) else {}
        training = first.get("training") if isinstance(first, dict) else None
        found[model] = str(training["epochs"]) if training else "checkpoint"
    if len(set(found.values())) == 1:
        return next(iter(found.values()))
    return ", ".join(f"{model} {epochs}" for model, epochs in found.items())


def _options(meta: dict[str, Any], optimizer: str) -> str:
    chosen = [a.get("options") or {} for a in meta.get("attacks") or [] if a.get("optimizer") == optimizer]
    given = {k: v for options in chosen for k, v in options.items()}
    return ", ".join(f"{k}={v}" for k, v in sorted(given.items())) if given else "its defaults"


def protocol_lines(meta: dict[str, Any], rows: pd.DataFrame, dataset: str | None, optimizer: str,
                   paper: pd.DataFrame | None, other_code: list[str]) -> list[str]:
    """What one table of the report measured, as Markdown lines.

    Args:
        meta: The suite as ``suite.json`` records it.
        rows: The report's current rows.
        dataset: The table's data set (None for a table across data sets).
        optimizer: The table's optimizer (``worst`` for the audit's worst case).
        paper: The reported numbers the table compares with, or None.
        other_code: ``dataset/model/measurement`` of the measurements computed by other code (see
            :func:`aebench.report.current.other_code`).
    """
    mine = rows if dataset is None else rows[rows.dataset == dataset]
    models = list(dict.fromkeys(mine.model))
    seeds = ", ".join(str(s) for s in meta.get("seeds") or [])
    where = f" on {dataset}" if dataset else ""
    how = ("the worst case per image over every attack of the suite" if optimizer == "worst"
           else f"optimizer `{optimizer}` with {_options(meta, optimizer)}")
    lines = [f"Suite `{meta.get('name')}` (`{meta.get('path')}`){where}: {meta.get('n_images')} test images × "
             f"{meta.get('n_trials')} trials, seed(s) {seeds}; {how}; training epochs: {_epochs(mine, models)}."]
    if paper is not None and len(paper) and dataset is not None:
        tables = sorted(set(paper[(paper.dataset == dataset) & paper.model.isin(models)].table))
        if tables:
            lines.append(f"Paper columns: as reported by Saseendran et al. (NeurIPS 2022), {' and '.join(tables)}, "
                         f"{dataset}.")
    lines.append(NOTATION)
    here = [name for name in other_code if dataset is None or name.startswith(f"{dataset}/")]
    if here:
        lines.append(f"**Warning:** {len(here)} measurement(s) here were computed by other code than the installed "
                     f"aebench (e.g. {', '.join(here[:3])}); `aebench run {meta.get('path')}` recomputes them.")
    return lines
