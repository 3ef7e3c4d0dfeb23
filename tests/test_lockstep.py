"""scipy's L-BFGS-B run per row in lockstep (``aebench.attacks.lockstep``) against scipy's own per-problem driver.

With an evaluation that computes each row on its own, the lockstep driver must reproduce ``fmin_l_bfgs_b`` on every
row bit for bit: same final point, same iteration count, same stops at the caps.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import fmin_l_bfgs_b

from aebench.attacks import lockstep

N = 12


def _problem(rows: int, seed: int = 0):
    """Per-row nonconvex objectives f_i(x) = ½‖A_i x − b_i‖² + Σ c_i·cos(3x) on boxes that cut through the optima."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(rows, N + 3, N))
    a[:, :, : N // 2] *= 4.0  # ill-conditioned, so L-BFGS-B needs many iterations
    b = rng.normal(size=(rows, N + 3)) * 2.0
    c = rng.uniform(0.0, 0.5, size=rows)
    lower = rng.uniform(-1.5, -0.2, size=(rows, N))
    upper = lower + rng.uniform(0.3, 2.0, size=(rows, N))
    x0 = rng.uniform(-2.0, 2.0, size=(rows, N))  # partly outside the box: both drivers clip it

    def one(i: int, x: np.ndarray) -> tuple[float, np.ndarray]:
        r = a[i] @ x - b[i]
        return float(0.5 * r @ r + c[i] * np.cos(3.0 * x).sum()), a[i].T @ r - 3.0 * c[i] * np.sin(3.0 * x)

    return one, x0, lower, upper


def _reference(one, x0, lower, upper, **options):
    results = []
    for i in range(x0.shape[0]):
        x, _, info = fmin_l_bfgs_b(lambda x, i=i: one(i, x), x0[i], bounds=list(zip(lower[i], upper[i], strict=True)),
                                   **options)
        results.append((x, info))
    return results


def _lockstep(one, x0, lower, upper, **options):
    calls = []

    def evaluate(rows: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(rows.copy())
        values = [one(int(i), p) for i, p in zip(rows, points, strict=True)]
        return np.array([v for v, _ in values]), np.stack([g for _, g in values])

    x, iterations, capped = lockstep.run_rows(evaluate, x0, lower, upper, **options)
    return x, iterations, capped, calls


@pytest.mark.parametrize("history", [3, 10])
def test_every_row_follows_scipys_own_driver_exactly(history) -> None:
    one, x0, lower, upper = _problem(9)
    expected = _reference(one, x0, lower, upper, m=history, factr=10, pgtol=1e-10)
    x, iterations, capped, calls = _lockstep(one, x0, lower, upper, history=history, factr=10.0, pgtol=1e-10)
    for i, (x_ref, info) in enumerate(expected):
        assert np.array_equal(x[i], x_ref), (i, float(np.abs(x[i] - x_ref).max()))
        assert iterations[i] == info["nit"]
        assert not capped[i] and info["warnflag"] != 1
    # The rows finish at different times and leave the batch (else the test would not exercise the bookkeeping),
    # and each row is evaluated as often as scipy evaluates it.
    assert len({int(info["nit"]) for _, info in expected}) > 3
    assert len(calls[-1]) < x0.shape[0]
    counts = np.bincount(np.concatenate(calls), minlength=x0.shape[0])
    assert [int(c) for c in counts] == [info["funcalls"] for _, info in expected]


@pytest.mark.parametrize("cap", [{"max_iter": 4}, {"max_fun": 6}])
def test_the_caps_stop_a_row_where_scipy_stops_it(cap) -> None:
    one, x0, lower, upper = _problem(5, seed=1)
    scipy_cap = {"maxiter": cap["max_iter"]} if "max_iter" in cap else {"maxfun": cap["max_fun"]}
    expected = _reference(one, x0, lower, upper, m=5, factr=10, pgtol=1e-10, **scipy_cap)
    x, iterations, capped, _ = _lockstep(one, x0, lower, upper, history=5, factr=10.0, pgtol=1e-10, **cap)
    for i, (x_ref, info) in enumerate(expected):
        assert np.array_equal(x[i], x_ref)
        assert iterations[i] == info["nit"]
        assert bool(capped[i]) == (info["warnflag"] == 1)
    assert capped.all()  # the caps are far below what these problems need


def test_an_unknown_scipy_entry_point_is_refused_clearly(monkeypatch) -> None:
    class OldScipy:
        def setulb(self):  # the Fortran-era signature had iprint and csave
            """setulb(m,x,l,u,nbd,f,g,factr,pgtol,wa,iwa,task,iprint,csave,lsave,isave,dsave,maxls)"""

    monkeypatch.setattr(lockstep, "_lbfgsb", OldScipy())
    with pytest.raises(RuntimeError, match="scipy >= 1.15.*backend 'torch'"):
        lockstep.check_available()


def test_rows_beyond_the_workspace_budget_run_in_groups_with_the_same_results(monkeypatch) -> None:
    one, x0, lower, upper = _problem(7, seed=2)
    whole = _lockstep(one, x0, lower, upper, history=4, factr=10.0, pgtol=1e-10)
    per_row = 8 * (2 * 4 * N + 5 * N + 11 * 16 + 8 * 4)
    monkeypatch.setattr(lockstep, "WORKSPACE_BYTES", 3 * per_row)  # groups of 3, 3 and 1 rows
    grouped = _lockstep(one, x0, lower, upper, history=4, factr=10.0, pgtol=1e-10)
    assert max(len(rows) for rows in grouped[3]) == 3
    for a, b in zip(whole[:3], grouped[:3], strict=True):
        assert np.array_equal(a, b)


def test_infinite_or_crossed_bounds_are_refused() -> None:
    one, x0, lower, upper = _problem(2)
    for lo, hi in ((lower, upper + np.inf), (upper, lower)):
        with pytest.raises(ValueError, match="finite bounds with lower <= upper"):
            _lockstep(one, x0, lo, hi, history=3, factr=10.0, pgtol=1e-8)
