"""The paper's optimizer: L-BFGS-B with box bounds and the λ-ball rescale inside the objective.

Saseendran et al. (NeurIPS 2022, eq. 12/13) attack with scipy's L-BFGS-B (Byrd, Lu, Nocedal and Zhu, "A Limited
Memory Algorithm for Bound Constrained Optimization", SIAM J. Sci. Comput. 1995; Zhu et al., ACM TOMS 1997):

- the variable v has per-pixel bounds [−x, 1 − x], so x + v ∈ [0, 1];
- the objective is evaluated at δ = rescale(v) = v · min(1, λ/‖v‖₂), with gradients through the rescale, and the
  final δ gets the same rescale (official-code-spec.md §7.1–7.2);
- the start is a random point of the λ-ball (``sample_d_ball``), history m = 25 (latent) or 100 (maximum damage),
  factr = 10 and pgtol = 1e-5 (latent) or 1e-20 (maximum damage).

Three implementations, all attacking the whole batch at once:

- ``backend="lockstep"`` (default): scipy's L-BFGS-B itself on every row (``aebench.attacks.lockstep``), the rows'
  requests for f and ∇f answered by one batched evaluation. Per image this is the authors' algorithm with their
  settings and caps (15000 iterations; ``max_iter`` replaces it), in float64 as scipy runs it; it differs from the
  authors' per-image loop only by float32 rounding in the batched network evaluation, to which the loop itself is
  not robust on some images (``benchmarks/attack_throughput.py --loop-replica``). Its cost is the batched network
  evaluations plus scipy's own work per row, which dominates at m = 100 (77% of the time, maximum damage λ = 1 on
  1,000 images of the 100-epoch GMM-DAE, one thread).
- ``backend="torch"``: a batched projected L-BFGS written in torch, 2–6× as fast. Every row keeps its own
  memory, curvature scaling, backtracking line search and stopping test, so each image follows its own path; rows
  that have converged leave the batch. Bounds are handled by projection onto the box and by freezing variables at a
  bound whose gradient points outward (the active set of a projected quasi-Newton method), instead of L-BFGS-B's
  generalised Cauchy point and subspace minimisation. As in L-BFGS-B, a row without memory tries the projected
  gradient point P(v − ∇f) at step 1, and a step is accepted at sufficient decrease with the constant 1e-3 that
  scipy's line search uses (its dcsrch ``ftol``, not this module's stopping option ``ftol``). Its path is close
  to, not the same as, scipy's; the ensemble's final refinement uses it.
- ``backend="scipy"``: scipy's ``fmin_l_bfgs_b`` on the stacked batch with the summed objective. The objective is
  separable, so the optimum of the sum is every row's optimum, but one shared line search and one shared memory make
  the path differ from the per-image runs.

``benchmarks/attack_throughput.py`` compares them with the authors' per-image loop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import fmin_l_bfgs_b
from torch import Tensor

from aebench.attacks import lockstep
from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput
from aebench.attacks.feasible import rescale_to_ball

BACKENDS = ("lockstep", "torch", "scipy")
MAX_ITER = 100
"""Default iteration cap of the torch and scipy backends (lockstep: scipy's default 15000, as the authors ran it)."""
# scipy's factr is a multiple of the float64 machine epsilon; the authors' factr = 10.
_FACTR = 10.0
_EPS64 = float(np.finfo(np.float64).eps)
# Armijo sufficient-decrease constant of the line search: 1e-3, the value scipy's L-BFGS-B passes to its line
# search (lnsrlb → dcsrch, where it is called ftol; not the stopping test that the option ``ftol`` sets here).
_C1 = 1e-3


@OPTIMIZERS.register("lbfgs")
def lbfgs(
    problem: AttackProblem,
    *,
    return_trace: bool = False,
    max_iter: int | None = None,
    history: int | None = None,
    pgtol: float | None = None,
    ftol: float = _FACTR * _EPS64,
    max_ls: int = 20,
    backend: str = "lockstep",
) -> OptimizerOutput:
    """Minimise the problem's objective with (batched) L-BFGS-B as the authors did.

    Args:
        problem: The attack.
        return_trace: Record the per-row objective after every iteration (scipy backend: after every evaluation;
            lockstep: each row's latest value after every batched evaluation, line-search trials included).
        max_iter: Iteration cap per row (None: 100 for ``torch`` and ``scipy``, which bounds the cost; the authors'
            scipy default 15000 for ``lockstep``).
        history: Memory m (None: the authors' value for the attack, 25 latent / 100 maximum damage).
        pgtol: Stop a row when its projected gradient's largest entry is below this (None: the authors' value).
        ftol: Stop a row when its relative decrease in one iteration is at most this (factr · eps = 2.2e-15).
        max_ls: Line-search evaluations per iteration (scipy's maxls).
        backend: ``"lockstep"`` (scipy's L-BFGS-B per row, batched evaluations), ``"torch"`` (batched per-row
            projected L-BFGS) or ``"scipy"`` (fmin_l_bfgs_b on the summed batch).

    Returns:
        The final perturbations rescale(v) and, when asked, the trace.
    """
    if backend not in BACKENDS:
        raise ValueError(f"lbfgs backend must be one of {BACKENDS}, got {backend!r}.")
    if max_iter is None:
        max_iter = lockstep.MAX_ITER if backend == "lockstep" else MAX_ITER
    for name, value in (("max_iter", max_iter), ("max_ls", max_ls)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"lbfgs option {name} must be a positive integer, got {value!r}.")
    history = problem.objective.lbfgs_history if history is None else history
    if isinstance(history, bool) or not isinstance(history, int) or history < 1:
        raise ValueError(f"lbfgs option history must be a positive integer, got {history!r}.")
    pgtol = problem.objective.lbfgs_pgtol if pgtol is None else float(pgtol)
    v0 = problem.initial()
    run = {"torch": _lbfgs_torch, "lockstep": _lbfgs_lockstep, "scipy": _lbfgs_scipy}[backend]
    v, trace, iterations, capped = run(problem, v0, max_iter, history, pgtol, float(ftol), max_ls, return_trace)
    delta = rescale_to_ball(v.view_as(problem.x), problem.budget)
    return OptimizerOutput(delta=delta, trace=trace, iterations=iterations, capped=capped)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of two (R, n) tensors (vecdot: no (R, n) temporary, fastest measured on CPU)."""
    return torch.linalg.vecdot(a, b)


def _two_loop(grad: Tensor, s: Tensor, y: Tensor, rho: Tensor, valid: Tensor, gamma: Tensor,
              order: list[int]) -> Tensor:
    """H·grad per row by the L-BFGS two-loop recursion; ``order`` lists memory slots newest first.

    Rows whose pair in a slot is invalid (skipped or reset) ignore that slot through ``valid``. The recursion is
    memory-bound, so it works in place with fused multiply-adds.
    """
    q = grad.clone()
    alphas = {}
    for j in order:
        a = rho[j] * _dot(s[j], q) * valid[j]
        q.addcmul_(y[j], a[:, None], value=-1.0)
        alphas[j] = a
    r = q.mul_(gamma[:, None])
    for j in reversed(order):
        b = rho[j] * _dot(y[j], r) * valid[j]
        r.addcmul_(s[j], (alphas[j] - b)[:, None])
    return r


def _lbfgs_torch(
    problem: AttackProblem, v0: Tensor, max_iter: int, m: int, pgtol: float, ftol: float, max_ls: int, record: bool
) -> tuple[Tensor, Tensor | None, int, Tensor]:
    shape = tuple(problem.x.shape)
    batch, n = shape[0], math.prod(shape[1:])
    image_shape = shape[1:]
    x_flat = problem.x.flatten(1)
    lo, hi = -x_flat, 1.0 - x_flat
    idx = torch.arange(batch, device=x_flat.device)  # live row → row of the batch

    def evaluate(v_rows: Tensor, live: Tensor) -> tuple[Tensor, Tensor]:
        f, g = problem.value_and_grad(v_rows.view(-1, *image_shape), idx[live], rescale=True)
        return f, g.flatten(1)

    # As L-BFGS-B, the start is projected onto the bounds.
    v = torch.clamp(v0.flatten(1), lo, hi)
    f, g = evaluate(v, torch.arange(batch, device=v.device))
    v_out, f_out = v.clone(), f.clone()
    trace = [f_out.clone()] if record else None

    s_mem = torch.zeros(m, batch, n, dtype=v.dtype, device=v.device)
    y_mem = torch.zeros_like(s_mem)
    rho = torch.zeros(m, batch, dtype=v.dtype, device=v.device)
    valid = torch.zeros(m, batch, dtype=v.dtype, device=v.device)  # 1.0 where the slot holds a usable pair
    gamma = torch.ones(batch, dtype=v.dtype, device=v.device)
    has_memory = torch.zeros(batch, dtype=torch.bool, device=v.device)
    active = torch.ones(batch, dtype=torch.bool, device=v.device)
    iterations = 0

    for k in range(max_iter):
        if not active.any():
            break
        iterations = k + 1
        problem.report(iterations, max_iter)
        live_rows = torch.arange(idx.numel(), device=v.device)
        # Variables at a bound whose gradient points out of the box stay fixed this iteration.
        at_bound = ((v <= lo) & (g > 0)) | ((v >= hi) & (g < 0))
        free = (~at_bound).to(v.dtype)
        g_free = g * free
        # The step to the projected gradient point P(v − ∇f): its size is the pgtol test, and it is the direction of
        # a row without (usable) memory.
        to_projected = torch.clamp(v - g, lo, hi) - v
        projected_grad = to_projected.abs().amax(1)
        done = ~active | (projected_grad <= pgtol)

        order = [(k - 1 - i) % m for i in range(min(k, m))]
        d = -_two_loop(g_free, s_mem, y_mem, rho, valid, gamma, order) * free if order else -g_free
        # A row without memory steps to the projected gradient point P(v − ∇f), as L-BFGS-B does on a problem with
        # both bounds on every variable: with B = I its generalised Cauchy point is exactly that point, tried at
        # step 1 (lnsrlb: stp = 1 when every variable is boxed).
        d = torch.where(has_memory[:, None], d, to_projected)
        slope = (g * d).sum(1)
        # A memory that no longer yields descent (possible with the active set) is dropped for that row.
        not_descent = ~(slope < 0) | ~torch.isfinite(slope)
        if not_descent.any():
            d[not_descent] = to_projected[not_descent]
            valid[:, not_descent] = 0.0
            gamma[not_descent] = 1.0
            has_memory[not_descent] = False
            slope = (g * d).sum(1)
        done |= ~(slope < 0)

        step = torch.ones_like(slope)
        v_new, f_new, g_new = v.clone(), f.clone(), g.clone()
        accepted = torch.zeros_like(done)
        pending = live_rows[~done]
        for _ in range(max_ls):
            if pending.numel() == 0:
                break
            t = step[pending]
            v_try = torch.clamp(v[pending] + t[:, None] * d[pending], lo[pending], hi[pending])
            f_try, g_try = evaluate(v_try, pending)
            decrease = (g[pending] * (v_try - v[pending])).sum(1)
            ok = torch.isfinite(f_try) & (f_try <= f[pending] + _C1 * decrease)
            good = pending[ok]
            v_new[good], f_new[good], g_new[good] = v_try[ok], f_try[ok], g_try[ok]
            accepted[good] = True
            # Backtrack to the minimiser of the quadratic through f(0), f'(0) and f(t), kept in [0.1 t, 0.5 t].
            bad = ~ok
            t_bad, sl = t[bad], slope[pending][bad]
            curv = f_try[bad] - f[pending][bad] - sl * t_bad
            t_q = -sl * t_bad**2 / (2.0 * curv)
            t_q = torch.where(torch.isfinite(t_q) & (curv > 0), t_q, 0.5 * t_bad)
            step[pending[bad]] = torch.minimum(torch.maximum(t_q, 0.1 * t_bad), 0.5 * t_bad)
            pending = pending[bad]

        # A failed line search drops the memory; on a projected-gradient step it ends the row (scipy's ABNORMAL).
        failed = ~accepted & ~done
        done |= failed & ~has_memory
        retry = failed & has_memory
        valid[:, retry] = 0.0
        gamma[retry] = 1.0
        has_memory[retry] = False

        s_vec, y_vec = v_new - v, g_new - g
        sy, yy = _dot(s_vec, y_vec), _dot(y_vec, y_vec)
        store = accepted & (sy > 1e-10 * yy) & (yy > 0)
        slot = k % m
        s_mem[slot], y_mem[slot] = s_vec, y_vec
        valid[slot] = store.to(v.dtype)
        rho[slot] = torch.where(store, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        gamma = torch.where(store, sy / yy.clamp_min(1e-30), gamma)
        has_memory |= store

        relative = (f - f_new) / torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        done |= accepted & (relative <= ftol)
        v, f, g = v_new, f_new, g_new
        v_out[idx], f_out[idx] = v, f
        if record:
            trace.append(f_out.clone())
        active = ~done

        # Converged rows stop being evaluated at once; they leave the (large) memory arrays once a quarter of the
        # rows are finished: a copy costs about one iteration's pass over the memory, and copying more often (every
        # eighth was measured) costs more than the dead rows do in the two-loop recursion.
        if (~active).sum() * 4 >= max(1, idx.numel()):
            keep = active
            idx, v, f, g, lo, hi = idx[keep], v[keep], f[keep], g[keep], lo[keep], hi[keep]
            s_mem, y_mem = s_mem[:, keep], y_mem[:, keep]
            rho, valid, gamma, has_memory = rho[:, keep], valid[:, keep], gamma[keep], has_memory[keep]
            active = active[keep]

    # Rows still active after the last iteration were stopped by the cap, not by a convergence test.
    capped = torch.zeros(batch, dtype=torch.bool, device=v_out.device)
    capped[idx[active]] = True
    return v_out, (torch.stack(trace) if record else None), iterations, capped


def _lbfgs_lockstep(
    problem: AttackProblem, v0: Tensor, max_iter: int, m: int, pgtol: float, ftol: float, max_ls: int, record: bool
) -> tuple[Tensor, Tensor | None, int, Tensor]:
    shape = tuple(problem.x.shape)
    x64 = problem.x.detach().double().cpu().flatten(1).numpy()
    trace: list[Tensor] = []
    last = torch.empty(0)
    if record:  # the trace starts at every row's start, so rows of groups that have not begun yet have a value
        start = torch.clamp(v0, -problem.x, 1.0 - problem.x)
        last = problem.value(rescale_to_ball(start, problem.budget)).detach().cpu()

    def evaluate(rows: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # As the authors' objective: the float64 point is cast to the model's dtype, values and gradients come back
        # as float64.
        index = torch.from_numpy(rows).to(problem.x.device)
        v = torch.from_numpy(points).to(problem.x.device, problem.x.dtype).view(-1, *shape[1:])
        f, g = problem.value_and_grad(v, index, rescale=True)
        if record:
            last[index.cpu()] = f.cpu()
            trace.append(last.clone())
        return f.double().cpu().numpy(), g.double().cpu().flatten(1).numpy()

    def on_round(finished: int) -> None:
        problem.report(finished, shape[0])  # progress as the share of rows finished

    v, iterations, capped = lockstep.run_rows(
        evaluate, v0.detach().double().cpu().flatten(1).numpy(), -x64, 1.0 - x64, history=m, factr=ftol / _EPS64,
        pgtol=pgtol, max_iter=max_iter, max_ls=max_ls, on_round=on_round)
    delta = torch.from_numpy(v).to(problem.x.device, problem.x.dtype).view(shape)
    trace_out = torch.stack(trace) if record and trace else None
    return delta, trace_out, int(iterations.max(initial=0)), torch.from_numpy(capped).to(problem.x.device)


def _lbfgs_scipy(
    problem: AttackProblem, v0: Tensor, max_iter: int, m: int, pgtol: float, ftol: float, max_ls: int, record: bool
) -> tuple[Tensor, Tensor | None, int, Tensor]:
    shape = tuple(problem.x.shape)
    x64 = problem.x.detach().double().cpu().flatten().numpy()
    bounds = np.stack([-x64, 1.0 - x64], axis=1)
    trace: list[Tensor] = []

    def fun(v_flat: np.ndarray) -> tuple[float, np.ndarray]:
        v = torch.from_numpy(v_flat).to(problem.x.device, problem.x.dtype).view(shape)
        f, g = problem.value_and_grad(v, rescale=True)
        if record:
            trace.append(f.cpu())
        return float(f.double().sum()), g.double().cpu().flatten().numpy()

    v_opt, _, info = fmin_l_bfgs_b(
        fun,
        v0.detach().double().cpu().flatten().numpy(),
        bounds=bounds,
        m=m,
        factr=ftol / _EPS64,
        pgtol=pgtol,
        maxiter=max_iter,
        maxls=max_ls,
    )
    v = torch.from_numpy(v_opt).to(problem.x.device, problem.x.dtype).view(shape)
    # One shared run: its cap (warnflag 1) stops every row at once.
    capped = torch.full((shape[0],), info["warnflag"] == 1, dtype=torch.bool, device=problem.x.device)
    return v, (torch.stack(trace) if record else None), int(info["nit"]), capped
