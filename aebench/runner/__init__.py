"""The suite runner: plan a suite into cells and measurements, then train or load each model and measure it.

:mod:`aebench.runner.plan` decides everything before any compute (cells, model sources, measurement keys),
:mod:`aebench.runner.measure` computes one measurement, :mod:`aebench.runner.run` orchestrates, resumes and records.
"""

from __future__ import annotations

from aebench.runner.plan import CellPlan, Measurement, ModelSource, attack_runs, explain_cell, plan_suite
from aebench.runner.run import RunError, RunSummary, parse_shard, run_suite

__all__ = ["CellPlan", "Measurement", "ModelSource", "RunError", "RunSummary", "attack_runs", "explain_cell",
           "parse_shard", "plan_suite", "run_suite"]
