"""Numbers reported by papers, shipped as tidy CSV files (``saseendran2022.csv``: Tables 1-3 of the NeurIPS 2022 paper).

A suite names one with ``paper_results: saseendran2022`` (or a CSV path) to show it beside its own numbers.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def paper_results_path(name: str) -> Path:
    """The CSV file a ``paper_results`` value names: a path ending in ``.csv``, or a file shipped here."""
    return Path(name) if str(name).endswith(".csv") else FOLDER / f"{name}.csv"


def known_paper_results() -> list[str]:
    """Names of the shipped files."""
    return sorted(p.stem for p in FOLDER.glob("*.csv"))
