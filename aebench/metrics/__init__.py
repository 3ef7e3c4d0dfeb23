"""Metrics evaluated after an attack: MS-SSIM (the paper's and the standard one), l2 distances, the registry.

See :mod:`aebench.metrics.specs` for the registered names and their directions, :mod:`aebench.metrics.msssim` for
the two MS-SSIM implementations (Saseendran et al. 2022 / jorge-pessoa, and Wang et al. 2003).
"""

from __future__ import annotations

from aebench.metrics.distances import l2_distance
from aebench.metrics.msssim import msssim, msssim_paper, standard_scales, standard_weights
from aebench.metrics.specs import ATTACK_KINDS, METRICS, AttackOutcome, MetricSpec, metrics_for

__all__ = [
    "ATTACK_KINDS",
    "METRICS",
    "AttackOutcome",
    "MetricSpec",
    "l2_distance",
    "metrics_for",
    "msssim",
    "msssim_paper",
    "standard_scales",
    "standard_weights",
]
