"""Adversarial attacks on autoencoders (Saseendran et al., NeurIPS 2022, eq. 12 and 13).

``run_attack(model, x, attack="latent" | "max_damage", budget=λ, optimizer="pgd" | "lbfgs" | "noise", ...)``
attacks a whole batch of (image, trial) pairs at once within ‖δ‖₂ ≤ λ and x + δ ∈ [0, 1]. ``lbfgs`` is the paper's
L-BFGS-B protocol (Byrd et al. 1995); ``pgd`` (Madry et al. 2018, the default) is faster at an equal or better
objective (``benchmarks/attack_throughput.py``); ``noise`` is the same-budget random baseline.
"""

from __future__ import annotations

from aebench.attacks.api import (
    DEFAULT_BUDGETS,
    DEFAULT_OPTIMIZER,
    OPTIMIZERS,
    AttackResult,
    optimizer_options,
    run_attack,
)
from aebench.attacks.objectives import ATTACKS, AttackObjective

__all__ = [
    "ATTACKS",
    "DEFAULT_BUDGETS",
    "DEFAULT_OPTIMIZER",
    "OPTIMIZERS",
    "AttackObjective",
    "AttackResult",
    "optimizer_options",
    "run_attack",
]
