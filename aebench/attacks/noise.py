"""The random-noise baseline: a perturbation of the attack's budget in a random direction.

It is scored with the same objective as the real attacks (Saseendran et al., NeurIPS 2022, eq. 12/13), so a table
can show that an optimised perturbation does more than noise of the same L2 norm.
"""

from __future__ import annotations

from aebench.attacks._problem import AttackProblem, OptimizerOutput
from aebench.attacks._project import project, sample_sphere


def noise(problem: AttackProblem, *, return_trace: bool = False) -> OptimizerOutput:
    """A uniformly random direction with norm λ, then clamped into the box (which can only shorten it).

    Args:
        problem: The attack (only its images, budget and generator are used to draw δ).
        return_trace: Record the objective of the single "step", shape (1, B).
    """
    x = problem.x
    delta = project(x, sample_sphere(tuple(x.shape), problem.budget, problem.generator, x.device), problem.budget)
    trace = problem.value(delta)[None] if return_trace else None
    return OptimizerOutput(delta=delta, trace=trace, iterations=1)
