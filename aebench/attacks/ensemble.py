"""The attack audit: per image, the worst case over several optimizers and restarts.

AutoAttack's discipline (Croce and Hein, ICML 2020, https://arxiv.org/abs/2003.01690) applied to autoencoders: a
local attack on an objective with several optima can fall short of the worst case on some images, and a model
can look robust because an attack happened to be weak on it. The ensemble runs each member optimizer on the
objectives of Saseendran et al. (NeurIPS 2022, eq. 12/13) and keeps, per image, the strongest perturbation found.
Every member's value is kept too, so a table can show the paper's attack beside the worst case.

Images that can no longer improve (an objective at its lower bound, e.g. a latent distance of 0) skip the
remaining members. Each member draws its random starts from its own generator, seeded from the problem's.
"""

from __future__ import annotations

import torch

from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput

DEFAULT_MEMBERS = ("apgd", "pgd", "lbfgs")


@OPTIMIZERS.register("ensemble")
def ensemble(
    problem: AttackProblem,
    *,
    return_trace: bool = False,
    members: tuple[str, ...] = DEFAULT_MEMBERS,
    apgd_restarts: int = 3,
) -> OptimizerOutput:
    """Run every member on the rows that can still improve; keep each row's strongest perturbation.

    Args:
        problem: The attack.
        return_trace: Record the best objective of every row after each member, shape (members, B).
        members: Registered optimizers to run, in order (each with its defaults; ``apgd`` with ``apgd_restarts``).
        apgd_restarts: Random restarts of the APGD member.

    Returns:
        The best perturbation per row, with each member's objective per row in ``members`` (rows a member skipped
        hold the best value known when it was skipped).
    """
    if not members or not all(isinstance(m, str) for m in members):
        raise ValueError(f"ensemble option members must be a non-empty list of optimizer names, got {members!r}.")
    unknown = [m for m in members if m not in OPTIMIZERS or m in ("ensemble", "noise")]
    if unknown:
        raise ValueError(f"ensemble members {unknown} are not attack optimizers; use some of {list(DEFAULT_MEMBERS)}.")
    x = problem.x
    best_delta = torch.zeros_like(x)
    best_f = problem.value(best_delta)
    values: dict[str, torch.Tensor] = {}
    trace = []
    bound = problem.objective.lower_bound
    for index, name in enumerate(members):
        rows = torch.arange(x.shape[0], device=x.device)
        if bound is not None:
            rows = rows[best_f > bound + 1e-6]
        seed = int(torch.randint(0, 2**62, (1,), generator=problem.generator))
        sub = AttackProblem(model=problem.model, x=x[rows], budget=problem.budget, objective=problem.objective,
                            reference=problem.reference[rows], generator=torch.Generator().manual_seed(seed),
                            on_progress=lambda done, total, index=index: problem.report(
                                index * total + done, len(members) * total))
        options = {"restarts": apgd_restarts} if name == "apgd" else {}
        member_f = best_f.clone()
        if rows.numel():
            out = OPTIMIZERS[name](sub, **options)
            f = sub.value(out.delta)
            member_f[rows] = f
            better = f < best_f[rows]
            best_f[rows[better]] = f[better]
            best_delta[rows[better]] = out.delta[better]
        problem.grad_rows += sub.grad_rows
        problem.value_rows += sub.value_rows
        values[name] = member_f
        trace.append(best_f.clone())
    return OptimizerOutput(delta=best_delta, trace=torch.stack(trace) if return_trace else None,
                           iterations=len(members), members=values)
