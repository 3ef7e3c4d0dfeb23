"""Projected gradient descent on δ with L2-normalised steps and random restarts.

The L2 variant of Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018): each
step moves δ by α_t along the per-image unit-norm negative gradient of the objective (Saseendran et al., NeurIPS
2022, eq. 12/13), leaving out the components that push a saturated pixel out of [0, 1], then projects δ exactly onto
the λ-ball ∩ box (:func:`~aebench.attacks.feasible.project`). The step decays from α₀ = step_size·λ
(cosine, step or constant schedule); every restart draws a new random start in the λ-ball and every row keeps the
best objective it has seen over all steps and restarts.

Defaults (4 restarts × 50 steps, α₀ = 0.25λ, cosine) were picked with ``benchmarks/attack_throughput.py`` on a
Fashion-MNIST FC gmm_dae, 1000 (image, trial) pairs, λ ∈ {1, 3}: against the authors' per-image L-BFGS-B loop they are
29–67× faster, 0.6–1.3% stronger on maximum damage and within 0.03% on the latent attack. One restart of 100 steps
costs the same but was 0.2% weaker than the loop on maximum damage at λ = 3; 2 × 50 was in between.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput
from aebench.attacks.feasible import descent_direction, project

SCHEDULES = ("cosine", "step", "constant")


def _step_factor(schedule: str, t: int, steps: int) -> float:
    if schedule == "cosine":
        # Decays to a small positive floor rather than 0 so the last steps still move.
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t / steps))
    if schedule == "step":
        return 0.1 ** (t * 3 // steps)  # three stages: α₀, α₀/10, α₀/100
    return 1.0


@OPTIMIZERS.register("pgd")
def pgd(
    problem: AttackProblem,
    *,
    return_trace: bool = False,
    steps: int = 50,
    restarts: int = 4,
    step_size: float = 0.25,
    schedule: str = "cosine",
) -> OptimizerOutput:
    """Minimise the problem's objective by projected L2-normalised gradient steps.

    Args:
        problem: The attack.
        return_trace: Record every row's objective at every iterate, shape (restarts·(steps + 1), B).
        steps: Gradient steps per restart.
        restarts: Independent random starts; each row keeps its best.
        step_size: First step length as a fraction of λ.
        schedule: ``"cosine"``, ``"step"`` (÷10 at 1/3 and 2/3 of the steps) or ``"constant"``.

    Returns:
        The best feasible perturbation per row and, when asked, the trace.
    """
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"pgd option {name} must be a positive integer, got {value!r}.")
    if not (isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"pgd option step_size must be a positive number (a fraction of the budget), got "
                         f"{step_size!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"pgd option schedule must be one of {SCHEDULES}, got {schedule!r}.")

    x, budget = problem.x, problem.budget
    best_delta = torch.zeros_like(x)
    best_f = torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
    trace: list[Tensor] = []

    def keep_best(delta: Tensor, f: Tensor) -> None:
        better = f < best_f
        best_f[better] = f[better]
        best_delta[better] = delta[better]

    for restart in range(restarts):
        delta = project(x, problem.initial(restart), budget)
        for t in range(steps):
            f, grad = problem.value_and_grad(delta)
            keep_best(delta, f)
            if return_trace:
                trace.append(f)
            alpha = step_size * budget * _step_factor(schedule, t, steps)
            delta = project(x, delta + alpha * descent_direction(x, delta, grad), budget)
            problem.report(restart * steps + t + 1, restarts * steps)
        f = problem.value(delta)
        keep_best(delta, f)
        if return_trace:
            trace.append(f)
    return OptimizerOutput(delta=best_delta, trace=torch.stack(trace) if return_trace else None,
                           iterations=restarts * steps)
