"""Auto-PGD adapted to the L2 ball ∩ [0, 1] box: a step size that adapts itself, momentum, restarts.

Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks" (ICML 2020, https://arxiv.org/abs/2003.01690), Algorithm 1, on the objectives of Saseendran et al.
(NeurIPS 2022, eq. 12/13), minimised:

- the first step is a projected normalised-gradient step of η⁽⁰⁾ = 2λ; after it, z = P(x_k − η ∇̂) and
  x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1})) with momentum α = 0.75;
- at the checkpoints w_j = ⌈p_j N⌉ (p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)) the step
  halves and the iterate restarts from the best point when, since the last checkpoint, fewer than ρ = 0.75 of the
  steps decreased the objective, or neither the step size nor the best value changed;
- every row keeps the best point it has seen. ∇̂ leaves out the components that push saturated pixels out of the
  box (:func:`~aebench.attacks.feasible.descent_direction`) and P is the exact projection onto the feasible set.

The adaptation is per row, so each image of the batch follows its own schedule. ``restarts`` runs the whole
schedule again from new random starts and keeps the best.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput
from aebench.attacks.feasible import descent_direction, project

MOMENTUM = 0.75
RHO = 0.75


def checkpoints(steps: int) -> list[int]:
    """The iterations at which the step size may halve (Croce & Hein 2020, §3.1)."""
    p = [0.0, 0.22]
    while p[-1] < 1.0:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    marks = sorted({math.ceil(q * steps) for q in p if q <= 1.0} - {0})
    return [m for m in marks if m < steps]


@OPTIMIZERS.register("apgd")
def apgd(
    problem: AttackProblem,
    *,
    return_trace: bool = False,
    steps: int = 100,
    restarts: int = 1,
) -> OptimizerOutput:
    """Minimise the problem's objective with APGD (module docstring).

    Args:
        problem: The attack.
        return_trace: Record every row's objective at every iterate, shape (restarts·(steps + 1), B).
        steps: Iterations per restart (N of the paper).
        restarts: Independent random starts; each row keeps its best.

    Returns:
        The best feasible perturbation per row and, when asked, the trace.
    """
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"apgd option {name} must be a positive integer, got {value!r}.")
    x, budget = problem.x, problem.budget
    view = (-1,) + (1,) * (x.dim() - 1)
    best_delta = torch.zeros_like(x)
    best_f = torch.full((x.shape[0],), math.inf, dtype=x.dtype, device=x.device)
    trace: list[Tensor] = []
    marks = set(checkpoints(steps))
    for restart in range(restarts):
        delta = project(x, problem.initial(restart), budget)
        f, grad = problem.value_and_grad(delta)
        run_best_f, run_best_delta = f.clone(), delta.clone()
        eta = torch.full_like(f, 2.0 * budget)
        previous = delta
        # Bookkeeping of the checkpoint conditions, per row.
        successes = torch.zeros_like(f)
        eta_at_mark, best_at_mark, last_mark = eta.clone(), run_best_f.clone(), 0
        if return_trace:
            trace.append(f.clone())
        for k in range(steps):
            z = project(x, delta + eta.view(view) * descent_direction(x, delta, grad), budget)
            if k == 0:
                new = z
            else:
                new = project(x, delta + MOMENTUM * (z - delta) + (1 - MOMENTUM) * (delta - previous), budget)
            previous, delta = delta, new
            f_new, grad = problem.value_and_grad(delta)
            successes += (f_new < f).to(f.dtype)
            f = f_new
            improved = f < run_best_f
            run_best_f = torch.where(improved, f, run_best_f)
            run_best_delta[improved] = delta[improved]
            if return_trace:
                trace.append(f.clone())
            if k + 1 in marks:
                span = k + 1 - last_mark
                stalled = (successes < RHO * span) | ((eta_at_mark == eta) & (best_at_mark == run_best_f))
                eta = torch.where(stalled, eta / 2, eta)
                # A halved step restarts from the best point seen (momentum is reset with it).
                delta = torch.where(stalled.view(view), run_best_delta, delta)
                previous = torch.where(stalled.view(view), run_best_delta, previous)
                if stalled.any():
                    f_restart, g_restart = problem.value_and_grad(delta[stalled], torch.nonzero(stalled).squeeze(1))
                    f[stalled], grad[stalled] = f_restart, g_restart
                successes.zero_()
                eta_at_mark, best_at_mark, last_mark = eta.clone(), run_best_f.clone(), k + 1
            problem.report(restart * steps + k + 1, restarts * steps)
        better = run_best_f < best_f
        best_f = torch.where(better, run_best_f, best_f)
        best_delta[better] = run_best_delta[better]
    return OptimizerOutput(delta=best_delta, trace=torch.stack(trace) if return_trace else None,
                           iterations=restarts * steps)
