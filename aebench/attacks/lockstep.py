"""scipy's L-BFGS-B on every row of a batch, the rows' evaluation requests answered by one batched evaluation.

The authors of Saseendran et al. (NeurIPS 2022) attack one image at a time with scipy's ``fmin_l_bfgs_b`` (Byrd, Lu,
Nocedal and Zhu, SIAM J. Sci. Comput. 1995; Zhu et al., ACM TOMS 1997; Morales and Nocedal, ACM TOMS 2011). The
algorithm's state per image is small; its cost is the network evaluation it asks for at every trial point. scipy's
driver talks to the L-BFGS-B code by reverse communication (``setulb`` returns whenever it needs f and ∇f at a new
point), so many instances can advance side by side: each row keeps its own scipy state, and whenever every live row
is waiting for an evaluation, one batched forward and backward answers them all.

Per row this is exactly the authors' algorithm with their settings (history, factr, pgtol, scipy's default caps of
15000 iterations and evaluations, 20 line-search steps), in float64 as scipy runs it; the only difference from the
per-image loop is float32 rounding in the batched network evaluation. :func:`run_rows` replicates the bookkeeping of
scipy's ``_minimize_lbfgsb``: the start is clipped to the bounds, a request at the point already evaluated is
answered from memory (scipy's ``ScalarFunction`` caches it) and the caps are tested at every new iterate.

``setulb`` is not public scipy API: its signature is that of scipy ≥ 1.15 (the C translation of L-BFGS-B), which
this module checks before it starts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

try:  # the private reverse-communication entry point of scipy's L-BFGS-B
    from scipy.optimize import _lbfgsb
except ImportError:  # pragma: no cover - scipy without the compiled module
    _lbfgsb = None

WORKSPACE_BYTES = 1 << 30
"""The rows advance in groups whose scipy workspaces (8·(2mn + 5n + 11m² + 8m) bytes a row: 2.5 MB at m = 100 on a
32×32 image, 20 MB on a 64×64 RGB one) fit in this; each group is one lockstep run."""
# scipy's fmin_l_bfgs_b defaults, which the authors' scripts keep.
MAX_ITER = 15000
MAX_FUN = 15000
# setulb task codes (scipy.optimize._lbfgsb_py.status_messages).
_NEW_X, _FG, _CONVERGENCE, _STOP = 1, 3, 4, 5
_STOP_MAXFUN, _STOP_MAXITER = 502, 504
_SIGNATURE = "setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,lsave,isave,dsave,maxls,ln_task)"

Evaluate = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``evaluate(rows, points)``: objective (k,) and gradient (k, n), float64, of the given rows at ``points`` (k, n)."""


def check_available() -> None:
    """Raise a clear error when this scipy's L-BFGS-B entry point is not the one this module drives."""
    doc = (getattr(getattr(_lbfgsb, "setulb", None), "__doc__", None) or "") if _lbfgsb is not None else ""
    if _SIGNATURE not in doc.replace(" ", ""):
        import scipy

        raise RuntimeError(
            f"lbfgs backend 'lockstep' needs scipy >= 1.15 (its C L-BFGS-B, entry point {_SIGNATURE}); this is "
            f"scipy {scipy.__version__}. Upgrade scipy (pip install 'scipy>=1.15') or use backend 'torch'."
        )


def run_rows(
    evaluate: Evaluate,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    history: int,
    factr: float,
    pgtol: float,
    max_iter: int = MAX_ITER,
    max_fun: int = MAX_FUN,
    max_ls: int = 20,
    on_round: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise every row's objective from its start with scipy's L-BFGS-B, all rows advancing together.

    Args:
        evaluate: Batched objective and gradient (see :data:`Evaluate`).
        x0: Starts (R, n).
        lower: Lower bounds (R, n), finite (every variable is boxed, as in the attacks).
        upper: Upper bounds (R, n), finite and ≥ ``lower``.
        history: Memory m (scipy's ``m`` / ``maxcor``).
        factr: Relative-decrease tolerance in multiples of the float64 epsilon (scipy's ``factr``).
        pgtol: Projected-gradient tolerance (scipy's ``pgtol``).
        max_iter: Iterations per row (scipy's ``maxiter``).
        max_fun: Evaluations per row (scipy's ``maxfun``).
        max_ls: Line-search evaluations per iteration (scipy's ``maxls``).
        on_round: Called with the number of rows finished so far (of R) after each batched evaluation (progress).

    Returns:
        (final points (R, n), iterations per row (R,), True where a cap stopped the row (R,)).
    """
    check_available()
    rows_n, n = x0.shape
    per_row = 8 * (2 * history * n + 5 * n + 11 * history * history + 8 * history)
    group = max(1, WORKSPACE_BYTES // per_row)
    if rows_n <= group:
        return _run_group(evaluate, x0, lower, upper, history, factr, pgtol, max_iter, max_fun, max_ls, on_round)
    parts = []
    for start in range(0, rows_n, group):
        rows = np.arange(start, min(start + group, rows_n))

        def evaluate_group(local: np.ndarray, points: np.ndarray, rows: np.ndarray = rows):
            return evaluate(rows[local], points)

        progress = None if on_round is None else (lambda done, start=start: on_round(start + done))
        parts.append(_run_group(evaluate_group, x0[rows], lower[rows], upper[rows], history, factr, pgtol, max_iter,
                                max_fun, max_ls, progress))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def _run_group(evaluate: Evaluate, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, history: int, factr: float,
               pgtol: float, max_iter: int, max_fun: int, max_ls: int,
               on_round: Callable[[int], None] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows_n, n = x0.shape
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower <= upper)):
        raise ValueError("lockstep L-BFGS-B needs finite bounds with lower <= upper on every variable.")
    x = np.ascontiguousarray(np.clip(x0, lower, upper), dtype=np.float64)
    lower = np.ascontiguousarray(lower, dtype=np.float64)
    upper = np.ascontiguousarray(upper, dtype=np.float64)
    nbd = np.full(n, 2, dtype=np.int32)  # every variable has both bounds
    m = history
    wa = np.zeros((rows_n, 2 * m * n + 5 * n + 11 * m * m + 8 * m), dtype=np.float64)
    iwa = np.zeros((rows_n, 3 * n), dtype=np.int32)
    task = np.zeros((rows_n, 2), dtype=np.int32)
    ln_task = np.zeros((rows_n, 2), dtype=np.int32)
    lsave = np.zeros((rows_n, 4), dtype=np.int32)
    isave = np.zeros((rows_n, 44), dtype=np.int32)
    dsave = np.zeros((rows_n, 29), dtype=np.float64)
    iterations = np.zeros(rows_n, dtype=np.int64)
    nfev = np.ones(rows_n, dtype=np.int64)  # scipy evaluates the start when it sets the problem up

    all_rows = np.arange(rows_n)
    f, g = evaluate(all_rows, x)
    f = np.asarray(f, dtype=np.float64).copy()
    g = np.ascontiguousarray(g, dtype=np.float64).copy()
    evaluated_at = x.copy()
    live = all_rows
    while live.size:
        waiting = []
        for i in live.tolist():
            while True:
                _lbfgsb.setulb(m, x[i], lower[i], upper[i], nbd, f[i], g[i], factr, pgtol, wa[i], iwa[i], task[i],
                               lsave[i], isave[i], dsave[i], max_ls, ln_task[i])
                code = task[i, 0]
                if code == _FG:
                    # scipy answers a request at the point it evaluated last from memory.
                    if np.array_equal(x[i], evaluated_at[i]):
                        continue
                    waiting.append(i)
                    break
                if code == _NEW_X:
                    iterations[i] += 1
                    if iterations[i] >= max_iter:
                        task[i] = (_STOP, _STOP_MAXITER)
                    elif nfev[i] > max_fun:
                        task[i] = (_STOP, _STOP_MAXFUN)
                    continue
                break  # converged, stopped or failed: the row is finished
        live = np.asarray(waiting, dtype=np.int64)
        if live.size:
            f_new, g_new = evaluate(live, x[live])
            f[live], g[live] = f_new, g_new
            evaluated_at[live] = x[live]
            nfev[live] += 1
            if on_round is not None:
                on_round(rows_n - int(live.size))
    capped = (task[:, 0] == _STOP) & np.isin(task[:, 1], (_STOP_MAXFUN, _STOP_MAXITER))
    return x, iterations, capped

