"""Tests of aebench.attacks: feasibility, determinism, errors, beating noise, and a closed-form optimum.

The closed form: for a linear encoder g(x) = Wx at x = 0.5·1 with λ ≤ 0.5 the box is inactive, and the latent attack
min ‖W(x + δ) − z_t‖ s.t. ‖δ‖ ≤ λ is a trust-region subproblem, solved here independently with numpy
(eigendecomposition of WᵀW and bisection on the Lagrange multiplier of the secular equation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from aebench.attacks import ATTACKS, DEFAULT_OPTIMIZER, OPTIMIZERS, run_attack
from aebench.attacks.feasible import clamp_box, l2_norms, project, rescale_to_ball, sample_d_ball
from aebench.models.base import AutoEncoder

SHAPE = (1, 16, 16)
N_PIX = math.prod(SHAPE)
# Fast settings so the whole file runs in seconds; the defaults are measured in benchmarks/attack_throughput.py.
FAST = {"lbfgs": {"max_iter": 40}, "pgd": {"steps": 20, "restarts": 2}, "apgd": {"steps": 20, "restarts": 2},
        "ensemble": {"apgd_restarts": 1}, "noise": {}}
OPTIMIZER_CASES = [("lbfgs", {}), ("lbfgs", {"backend": "scipy"}), ("lbfgs", {"backend": "torch"}), ("pgd", {}),
                   ("apgd", {}), ("ensemble", {}),
                   ("noise", {})]


class MLPAutoEncoder(AutoEncoder):
    """A tiny random MLP autoencoder with an optional BatchNorm (to check eval mode)."""

    def __init__(self, latent_dim: int = 6, hidden: int = 48, batch_norm: bool = False, seed: int = 0) -> None:
        super().__init__(SHAPE, latent_dim)
        torch.manual_seed(seed)
        norm: list[nn.Module] = [nn.BatchNorm1d(hidden)] if batch_norm else []
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(N_PIX, hidden), *norm, nn.Tanh(),
                                 nn.Linear(hidden, latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, N_PIX), nn.Sigmoid())

    def encode(self, x: Tensor) -> Tensor:
        return self.enc(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.dec(z).view(-1, *SHAPE)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        loss = ((self.reconstruct(x) - x) ** 2).mean()
        return {"loss": loss}

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)


class LinearAutoEncoder(MLPAutoEncoder):
    """g(x) = W x (no bias), so the latent attack has a closed-form optimum."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__(latent_dim=weight.shape[0])
        self.weight = nn.Parameter(weight.clone())

    def encode(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.T


def images(n: int, seed: int = 0) -> Tensor:
    """Images with many saturated pixels, so that the box constraint matters."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g).mul(1.6).sub(0.3).clamp(0, 1)


def attack(model: AutoEncoder, x: Tensor, name: str, budget: float, optimizer: str, seed: int = 0,
           target: Tensor | None = None, **options):
    if ATTACKS[name].needs_target and target is None:
        target = images(x.shape[0], seed=99)
    return run_attack(model, x, attack=name, budget=budget, optimizer=optimizer, target=target,
                      generator=torch.Generator().manual_seed(seed), **{**FAST[optimizer], **options})


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These batches are tiny: on a shared 2-core machine a second intra-op thread only adds synchronisation
    # (measured 5-8x slower), so the module runs single-threaded and restores the setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> MLPAutoEncoder:
    return MLPAutoEncoder().eval()


def test_registries() -> None:
    assert set(ATTACKS) == {"latent", "max_damage", "latent_msssim", "max_damage_msssim"}
    assert set(OPTIMIZERS) == {"lbfgs", "pgd", "apgd", "ensemble", "noise"}
    assert DEFAULT_OPTIMIZER == "pgd"  # chosen by benchmarks/attack_throughput.py
    assert ATTACKS["latent"].lbfgs_history == 25 and ATTACKS["max_damage"].lbfgs_history == 100


@pytest.mark.parametrize("name", ["latent", "max_damage"])
@pytest.mark.parametrize("optimizer,options", OPTIMIZER_CASES)
@pytest.mark.parametrize("budget", [0.7, 3.0])
def test_feasible(model, name, optimizer, options, budget) -> None:
    x = images(6)
    result = attack(model, x, name, budget, optimizer, **options)
    assert result.x_adv.shape == x.shape and result.objective.shape == (6,)
    assert float(l2_norms(result.x_adv - x).max()) <= budget + 1e-5
    assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
    assert torch.isfinite(result.objective).all()
    if name == "max_damage":
        assert (result.objective <= 0).all()


@pytest.mark.parametrize("optimizer,options", OPTIMIZER_CASES)
def test_zero_budget_leaves_input_unchanged(model, optimizer, options) -> None:
    x = images(4)
    for name in ATTACKS:
        result = attack(model, x, name, 0.0, optimizer, **options)
        assert torch.equal(result.x_adv, x)
    assert torch.allclose(attack(model, x, "max_damage", 0, optimizer).objective, torch.zeros(4), atol=1e-6)


@pytest.mark.parametrize("optimizer,options", OPTIMIZER_CASES)
def test_same_seed_same_result(model, optimizer, options) -> None:
    x = images(5)
    for name in ATTACKS:
        a = attack(model, x, name, 2.0, optimizer, seed=3, **options)
        b = attack(model, x, name, 2.0, optimizer, seed=3, **options)
        assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.objective, b.objective)
    c = attack(model, x, "max_damage", 2.0, optimizer, seed=4, **options)
    assert not torch.equal(a.x_adv, c.x_adv)


def test_rows_get_their_own_random_start(model) -> None:
    # Stacked trials of one image must not share a start (the caller stacks (image, trial) pairs).
    x = images(1).repeat(3, 1, 1, 1)
    result = attack(model, x, "max_damage", 2.0, "noise")
    assert not torch.equal(result.x_adv[0], result.x_adv[1])


@pytest.mark.parametrize("name", ["latent", "max_damage"])
@pytest.mark.parametrize("optimizer,options", [c for c in OPTIMIZER_CASES if c[0] != "noise"])
def test_attacks_beat_noise(model, name, optimizer, options) -> None:
    x = images(8)
    noise = attack(model, x, name, 2.0, "noise").objective
    real = attack(model, x, name, 2.0, optimizer, **options).objective
    assert (real <= noise + 1e-6).all()
    assert real.mean() < noise.mean() - 0.05 * noise.abs().mean()


def _trust_region_optimum(w: np.ndarray, r: np.ndarray, radius: float) -> float:
    """min ‖Wδ − r‖ s.t. ‖δ‖ ≤ radius, by the secular equation ‖(WᵀW + μI)⁻¹Wᵀr‖ = radius."""
    eigval, eigvec = np.linalg.eigh(w.T @ w)
    beta = eigvec.T @ (w.T @ r)
    positive = eigval > 1e-10 * eigval.max()
    # Interior solution (minimum-norm least squares) when it fits in the ball.
    delta_ls = eigvec[:, positive] @ (beta[positive] / eigval[positive])
    if np.linalg.norm(delta_ls) <= radius:
        return float(np.linalg.norm(w @ delta_ls - r))

    def norm(mu: float) -> float:
        return float(np.sqrt(np.sum(beta**2 / (eigval + mu) ** 2)))

    lo, hi = 0.0, 1.0
    while norm(hi) > radius:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm(mid) > radius else (lo, mid)
    delta = eigvec @ (beta / (eigval + hi))
    assert abs(np.linalg.norm(delta) - radius) < 1e-6 * radius
    return float(np.linalg.norm(w @ delta - r))


@pytest.mark.parametrize("budget", [0.2, 0.5])
@pytest.mark.parametrize("optimizer,options", [("lbfgs", {"max_iter": 200, "backend": "torch"}),
                                               ("lbfgs", {"backend": "scipy", "max_iter": 500}), ("lbfgs", {}),
                                               ("pgd", {"steps": 200, "restarts": 1}),
                                               ("apgd", {"steps": 200, "restarts": 1})])
def test_linear_encoder_reaches_the_closed_form_optimum(optimizer, options, budget) -> None:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(5, N_PIX, generator=g, dtype=torch.float64) / math.sqrt(N_PIX)
    weight[:, :N_PIX // 2] *= 3.0  # an ill-conditioned W, so the optimum is not along the gradient
    model = LinearAutoEncoder(weight.float()).eval()
    x = torch.full((3, *SHAPE), 0.5)
    z_target = torch.randn(3, 5, generator=g, dtype=torch.float64) * 2.0
    # The box [0, 1] is inactive: |δ_i| ≤ ‖δ‖ ≤ 0.5. The attack takes target images, so build x_t in [0, 1] along
    # W⁺(z − Wx), shrunk to stay in the box; its code z_t = W x_t is what the closed form aims at.
    w = model.weight.detach().double().numpy()
    x_flat = x.flatten(1).double().numpy()
    pinv = np.linalg.pinv(w)
    shift = (pinv @ (z_target.numpy() - x_flat @ w.T).T).T
    scale = 0.45 / np.abs(shift).max()
    target = torch.from_numpy(x_flat + scale * shift).float().view(3, *SHAPE)
    z_t = target.flatten(1).double().numpy() @ w.T
    result = run_attack(model, x, attack="latent", budget=budget, optimizer=optimizer, target=target,
                        generator=torch.Generator().manual_seed(1), **options)
    for i in range(3):
        optimum = _trust_region_optimum(w, z_t[i] - w @ x_flat[i], budget)
        assert optimum > 1e-3  # the constraint is active, so the test is not trivial
        got = float(result.objective[i])
        assert got >= optimum * (1 - 1e-4) - 1e-5
        assert got <= optimum * 1.01, (optimizer, options, budget, i, got, optimum)


def test_eval_mode_and_no_parameter_gradients() -> None:
    model = MLPAutoEncoder(batch_norm=True)
    model.train()
    bn = model.enc[2]
    mean_before = bn.running_mean.clone()
    x = images(4)
    for optimizer, options in OPTIMIZER_CASES:
        attack(model, x, "max_damage", 1.0, optimizer, **options)
        attack(model, x, "latent", 1.0, optimizer, **options)
    assert model.training
    assert torch.equal(bn.running_mean, mean_before)
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    attack(model, x, "latent", 1.0, "pgd")
    assert not model.training


def test_trace(model) -> None:
    x = images(4)
    pgd = attack(model, x, "max_damage", 2.0, "pgd", return_trace=True, steps=10, restarts=2)
    assert pgd.trace.shape == (22, 4)
    assert torch.allclose(pgd.trace.min(0).values, pgd.objective, atol=1e-5)
    lb = attack(model, x, "latent", 2.0, "lbfgs", return_trace=True)
    assert lb.trace.shape[1] == 4 and lb.trace.shape[0] >= 2
    assert torch.allclose(lb.trace[-1], lb.objective, atol=1e-4)
    assert attack(model, x, "latent", 2.0, "lbfgs").trace is None


def test_empty_batch(model) -> None:
    x = torch.zeros(0, *SHAPE)
    result = run_attack(model, x, attack="max_damage", budget=1.0)
    assert result.x_adv.shape == x.shape and result.objective.shape == (0,)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"budget": -1.0}, ValueError, "finite number"),
        ({"budget": float("nan")}, ValueError, "finite number"),
        ({"budget": float("inf")}, ValueError, "finite number"),
        ({"budget": "3"}, TypeError, "number"),
        ({"attack": "latnet"}, KeyError, "Did you mean 'latent'"),
        ({"optimizer": "lbgfs"}, KeyError, "Did you mean 'lbfgs'"),
        ({"optimizer": "pgd", "stpes": 3}, ValueError, "Did you mean 'steps'"),
        ({"optimizer": "lbfgs", "backend": "jax"}, ValueError, "backend"),
        ({"optimizer": "pgd", "steps": 0}, ValueError, "positive integer"),
        ({"attack": "latent", "target": None}, ValueError, "needs target"),
        ({"attack": "latent", "target": torch.rand(2, *SHAPE)}, ValueError, "shape of x"),
        ({"target": torch.rand(3, *SHAPE)}, ValueError, "takes no target"),
        ({"x": torch.rand(3, 1, 8, 8)}, ValueError, "model reads"),
        ({"x": torch.rand(3, N_PIX)}, ValueError, r"\(B, C, H, W\)"),
        ({"x": torch.rand(3, *SHAPE) + 1.0}, ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_input(model, kwargs, error, match) -> None:
    call = {"x": torch.rand(3, *SHAPE), "attack": "max_damage", "budget": 1.0, **kwargs}
    with pytest.raises(error, match=match):
        run_attack(model, call.pop("x"), **call)


def test_projection_helpers() -> None:
    g = torch.Generator().manual_seed(0)
    x = images(50)
    d = sample_d_ball((50, *SHAPE), 2.0, g)
    norms = l2_norms(d)
    assert float(norms.max()) <= 2.0 + 1e-6 and float(norms.min()) > 0
    big = torch.randn(50, *SHAPE, generator=g) * 10
    assert torch.allclose(l2_norms(rescale_to_ball(big, 1.5)), torch.full((50,), 1.5), atol=1e-5)
    small = big * 1e-3
    assert torch.equal(rescale_to_ball(small, 1.5), small)
    feasible = project(x, big, 1.5)
    assert float(l2_norms(feasible).max()) <= 1.5 + 1e-5
    assert float((x + feasible).min()) >= -1e-7 and float((x + feasible).max()) <= 1 + 1e-7
    assert torch.equal(clamp_box(x, torch.zeros_like(x)), torch.zeros_like(x))


def test_noise_spends_its_whole_budget_on_saturated_images():
    """Clamping a random direction into the box loses norm on 0/1 pixels; the baseline must give it back."""
    import torch as _torch

    from aebench.attacks import run_attack as _run
    from tests.helpers import build_model as _build

    x = (_torch.rand(64, 1, 32, 32, generator=_torch.Generator().manual_seed(0)) > 0.6).float()
    for budget in (1.0, 3.0, 5.0):
        result = _run(_build("gmm_dae").eval(), x, attack="max_damage", budget=budget, optimizer="noise",
                      generator=_torch.Generator().manual_seed(1))
        norms = (result.x_adv - x).flatten(1).norm(dim=1)
        assert norms.max() <= budget + 1e-5 and norms.min() >= 0.99 * budget
        assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def _scipy_projection(x: np.ndarray, v: np.ndarray, budget: float) -> np.ndarray:
    """The projection as a generic constrained least-squares problem (trust-constr), independent of the Newton solve."""
    from scipy.optimize import Bounds, NonlinearConstraint, minimize

    ball = NonlinearConstraint(lambda d: d @ d, -np.inf, budget**2, jac=lambda d: 2 * d[None],
                               hess=lambda d, m: 2 * m[0] * np.eye(d.size))
    start = np.clip(v, -x, 1.0 - x)
    start *= min(1.0, budget / max(np.linalg.norm(start), 1e-12)) * 0.99
    result = minimize(lambda d: 0.5 * np.sum((d - v) ** 2), start, jac=lambda d: d - v,
                      hess=lambda d: np.eye(d.size), bounds=Bounds(-x, 1.0 - x), constraints=[ball],
                      method="trust-constr", options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000})
    assert result.status in (1, 2), result.message
    return result.x


@pytest.mark.parametrize("kind", ["random", "saturated", "inside", "box_only"])
def test_projection_is_the_nearest_feasible_point_as_a_generic_solver_finds_it(kind) -> None:
    g = torch.Generator().manual_seed(0)
    n, d, budget = 4, 30, 1.0
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    if kind == "saturated":  # most pixels at 0 or 1, the case of MNIST-like images
        x = (x > 0.5).double() * (torch.rand(n, d, generator=g, dtype=torch.float64) > 0.2).double()
    v = torch.randn(n, d, generator=g, dtype=torch.float64) * {"inside": 0.05, "box_only": 0.2}.get(kind, 1.0)
    if kind == "inside":
        v = torch.clamp(v, -x, 1 - x)  # a feasible δ
    if kind == "box_only":
        budget = 10.0  # the ball is inactive: the projection is the box clamp
    projected = project(x, v, budget)
    for i in range(n):
        reference = _scipy_projection(x[i].numpy(), v[i].numpy(), budget)
        # The generic solver (an interior-point method) stops a little inside the bounds: ours must be at least as
        # near to v and agree with it to the solver's accuracy.
        ours = projected[i].numpy()
        assert np.linalg.norm(ours - v[i].numpy()) <= np.linalg.norm(reference - v[i].numpy()) + 1e-9
        np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert float(projected.norm(dim=1).max()) <= budget * (1 + 1e-12)
    assert bool(((x + projected) >= -1e-12).all() and ((x + projected) <= 1 + 1e-12).all())
    if kind == "inside":
        torch.testing.assert_close(projected, v)  # already feasible: unchanged
    # No other feasible point is nearer: the clamp-then-shrink point is feasible and never closer.
    from aebench.attacks.feasible import clamp_then_shrink

    other = clamp_then_shrink(x, v, budget)
    assert bool(((projected - v).norm(dim=1) <= (other - v).norm(dim=1) + 1e-9).all())


def test_the_ensemble_keeps_each_images_worst_case_and_every_members_value(model) -> None:
    x = images(8)
    result = attack(model, x, "max_damage", 2.0, "ensemble")
    assert set(result.members) == {"apgd", "lbfgs"}
    stacked = torch.stack(list(result.members.values()))
    # Per image the ensemble is at least the best member (the refinement can only lower it further).
    assert (result.objective <= stacked.min(dim=0).values + 1e-6).all()
    unrefined = attack(model, x, "max_damage", 2.0, "ensemble", refine=False)
    torch.testing.assert_close(unrefined.objective, torch.stack(list(unrefined.members.values())).min(dim=0).values,
                               rtol=1e-5, atol=1e-6)


def test_the_ensembles_first_member_is_that_optimizer_run_alone(model) -> None:
    # Same seed: the lbfgs member starts where a plain lbfgs run starts, so the ensemble is never weaker than it.
    x = images(8)
    alone = attack(model, x, "max_damage", 2.0, "lbfgs", max_iter=15000)  # the ensemble runs its members at defaults
    result = attack(model, x, "max_damage", 2.0, "ensemble")
    torch.testing.assert_close(result.members["lbfgs"], alone.objective, rtol=1e-5, atol=1e-6)
    assert (result.objective <= alone.objective + 1e-6).all()


def test_the_ensemble_skips_images_that_cannot_improve() -> None:
    # Half the images have a target whose code equals theirs: the latent distance is 0 already, its lower bound.
    weight = torch.eye(N_PIX)[:6]
    model = LinearAutoEncoder(weight).eval()
    x = images(4)
    target = images(4, seed=5)
    target[:2] = x[:2]
    options = dict(members=["lbfgs", "pgd"], refine=False, generator=torch.Generator().manual_seed(0))
    result = run_attack(model, x, attack="latent", budget=1.0, optimizer="ensemble", target=target, **options)
    for values in result.members.values():
        # At the bound up to float noise (a search may stop at 1e-8 rather than exactly 0).
        assert bool((values[:2] <= 1e-6).all()) and bool((values[2:] > 1e-3).all())
    # The first member attacks every image (it is the plain optimizer); pgd, 200 gradients per image, only the two
    # that can improve.
    alone = run_attack(model, x, attack="latent", budget=1.0, optimizer="lbfgs", target=target,
                       generator=torch.Generator().manual_seed(0))
    assert result.info["grad_evals"] - alone.info["grad_evals"] == 2 * 200
    with pytest.raises(ValueError, match="not attack optimizers"):
        run_attack(model, x, attack="latent", budget=1.0, optimizer="ensemble", target=target, members=["adam"])


@pytest.mark.parametrize("name,budget", [("latent", 1.0), ("max_damage", 2.0)])
def test_lbfgs_first_iteration_lands_where_scipys_l_bfgs_b_does(model, name, budget) -> None:
    """Row by row, one batched torch iteration reaches scipy's first L-BFGS-B iterate from the same start.

    On a problem with both bounds on every variable, L-BFGS-B's first step goes to the projected gradient point
    P(v − ∇f) at step 1; where scipy's line search accepts that step at once (two evaluations), the batched torch
    iteration must land on the same point. Rows where scipy backtracked use another interpolation and are left out.
    """
    from scipy.optimize import fmin_l_bfgs_b

    x = images(8, seed=3)
    objective = ATTACKS[name]
    target = images(8, seed=4) if objective.needs_target else None
    ours = run_attack(model, x, attack=name, budget=budget, optimizer="lbfgs", target=target, max_iter=1,
                      backend="torch", generator=torch.Generator().manual_seed(5))
    starts = sample_d_ball(tuple(x.shape), budget, torch.Generator().manual_seed(5))
    with torch.no_grad():
        reference = objective.reference(model, x, target)
    compared = 0
    for i in range(x.shape[0]):
        xi, ref = x[i : i + 1], reference[i : i + 1]

        def fun(v_flat: np.ndarray, xi: Tensor = xi, ref: Tensor = ref) -> tuple[float, np.ndarray]:
            v = torch.from_numpy(v_flat).float().view_as(xi).requires_grad_(True)
            value = objective.value(model, xi + rescale_to_ball(v, budget), ref).sum()
            (grad,) = torch.autograd.grad(value, v)
            return float(value.detach()), grad.double().flatten().numpy()

        x64 = xi.double().flatten().numpy()
        bounds = list(zip(-x64, 1 - x64, strict=True))
        v, _, info = fmin_l_bfgs_b(fun, starts[i].double().flatten().numpy(), bounds=bounds,
                                   m=objective.lbfgs_history, factr=10, pgtol=objective.lbfgs_pgtol, maxiter=1)
        if info["funcalls"] != 2:
            continue
        compared += 1
        expected = rescale_to_ball(torch.from_numpy(v).float().view_as(xi), budget)
        got = ours.x_adv[i : i + 1] - xi
        assert torch.allclose(got, expected, atol=1e-5), (name, i, float((got - expected).abs().max()))
    assert compared >= 4, f"scipy accepted its first step at once on only {compared} rows: the test compares nothing"


@pytest.mark.parametrize("name", ["latent", "max_damage"])
def test_the_default_lbfgs_is_the_authors_per_image_loop(name) -> None:
    """``lbfgs`` (backend lockstep) ends where scipy's fmin_l_bfgs_b, run image by image as the authors do, ends.

    In float64 the batched evaluation rounds as the per-image one does up to the last bits, so every row must land
    on the loop's point; a batched L-BFGS of another design (the torch backend) does not on all rows.
    """
    from scipy.optimize import fmin_l_bfgs_b

    model = MLPAutoEncoder(seed=2).double().eval()
    x = images(6, seed=7).double()
    objective = ATTACKS[name]
    target = images(6, seed=8).double() if objective.needs_target else None
    budget = 2.0
    ours = run_attack(model, x, attack=name, budget=budget, optimizer="lbfgs", target=target, max_iter=30,
                      generator=torch.Generator().manual_seed(5))
    starts = sample_d_ball(tuple(x.shape), budget, torch.Generator().manual_seed(5)).double()
    with torch.no_grad():
        reference = objective.reference(model, x, target)
    for i in range(x.shape[0]):
        xi, ref = x[i : i + 1], reference[i : i + 1]

        def fun(v_flat: np.ndarray, xi: Tensor = xi, ref: Tensor = ref) -> tuple[float, np.ndarray]:
            v = torch.from_numpy(v_flat).view_as(xi).requires_grad_(True)
            value = objective.value(model, xi + rescale_to_ball(v, budget), ref).sum()
            (grad,) = torch.autograd.grad(value, v)
            return float(value.detach()), grad.flatten().numpy()

        x64 = xi.flatten().numpy()
        v, _, _ = fmin_l_bfgs_b(fun, starts[i].flatten().numpy(), bounds=list(zip(-x64, 1 - x64, strict=True)),
                                m=objective.lbfgs_history, factr=10, pgtol=objective.lbfgs_pgtol, maxiter=30)
        expected = rescale_to_ball(torch.from_numpy(v).view_as(xi), budget)
        got = ours.x_adv[i : i + 1] - xi
        assert torch.allclose(got, expected, atol=1e-9), (name, i, float((got - expected).abs().max()))


def test_lbfgs_reports_the_rows_its_iteration_cap_cut_short(model) -> None:
    x = images(6)
    short = attack(model, x, "max_damage", 2.0, "lbfgs", max_iter=2)
    assert short.capped is not None and bool(short.capped.all())
    assert attack(model, x, "max_damage", 0.5, "pgd").capped is None


class _IdentityAE(AutoEncoder):
    """f(g(x)) = x on 32×32 images: the damage an attack does is the perturbation itself."""

    def __init__(self) -> None:
        super().__init__((1, 32, 32), 1024)

    def encode(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def decode(self, z: Tensor) -> Tensor:
        return z.view(-1, 1, 32, 32).clamp(0, 1)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        return {"loss": x.sum() * 0}

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, 1024, generator=generator)


def test_the_perceptual_max_damage_attack_lowers_ms_ssim_more_than_the_l2_attack() -> None:
    from aebench.metrics import msssim

    model = _IdentityAE()
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(6, 1, 64, 64, generator=g), 2).mul(0.6).add(0.2)  # smooth-ish
    found = {}
    for name in ("max_damage", "max_damage_msssim"):
        result = run_attack(model, x, attack=name, budget=2.0, optimizer="pgd",
                            generator=torch.Generator().manual_seed(1))
        assert float(l2_norms(result.x_adv - x).max()) <= 2.0 * (1 + 1e-6)
        found[name] = msssim(x, result.x_adv)
    # For an identity autoencoder every perturbation of norm λ does the same L2 damage; the MS-SSIM of that damage
    # differs a lot between directions, and only the perceptual attack looks for the worst one.
    assert bool((found["max_damage_msssim"] < found["max_damage"] - 0.05).all())
    assert ATTACKS["max_damage_msssim"].kind == "max_damage" and ATTACKS["latent_msssim"].kind == "latent"
