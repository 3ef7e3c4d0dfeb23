"""The random-noise baseline: a perturbation of the attack's budget in a random direction.

It is scored with the same objective as the real attacks (Saseendran et al., NeurIPS 2022, eq. 12/13), so a table
can show that an optimised perturbation does more than noise of the same L2 norm.
"""

from __future__ import annotations

from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput
from aebench.attacks.feasible import clamp_box, l2_norms, project, sample_sphere

_REFILL_ROUNDS = 20


@OPTIMIZERS.register("noise")
def noise(problem: AttackProblem, *, return_trace: bool = False) -> OptimizerOutput:
    """A uniformly random direction with norm λ that stays in the box and still spends (nearly) all of λ.

    Clamping a random direction into [0, 1] drops the components that push past a bound, which on images with
    saturated pixels leaves only ~0.7λ; the lost norm is given back by rescaling the direction and clamping again,
    a few rounds, so the noise is compared with the attacks at the same budget. Each round only clamps and the
    last step shrinks onto the ball, so ‖δ‖ ≤ λ and x + δ ∈ [0, 1] always hold.

    Args:
        problem: The attack (only its images, budget and generator are used to draw δ).
        return_trace: Record the objective of the single "step", shape (1, B).
    """
    x, budget = problem.x, problem.budget
    direction = sample_sphere(tuple(x.shape), budget, problem.generator, x.device)
    delta = clamp_box(x, direction)
    for _ in range(_REFILL_ROUNDS):
        norms = l2_norms(delta).clamp_min(1e-12)
        grow = (budget / norms).clamp(max=1e6).view(-1, *([1] * (x.dim() - 1)))
        delta = clamp_box(x, delta * grow)
    delta = project(x, delta, budget)
    trace = problem.value(delta)[None] if return_trace else None
    return OptimizerOutput(delta=delta, trace=trace, iterations=1)
