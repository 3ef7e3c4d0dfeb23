"""Suites: YAML files that say what to train, attack and measure, validated before any compute.

:mod:`aebench.suite.types` holds the validated form, :mod:`aebench.suite.validate` reads and checks a file.
"""

from __future__ import annotations

from aebench.suite.types import TABLES, AttackSpec, DownstreamSpec, FidelitySpec, ModelSpec, Suite, SuiteError
from aebench.suite.validate import load_suite, parse_suite

__all__ = ["TABLES", "AttackSpec", "DownstreamSpec", "FidelitySpec", "ModelSpec", "Suite", "SuiteError", "load_suite",
           "parse_suite"]
