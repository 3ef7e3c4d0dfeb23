"""The six VAE-family baselines of Table 1 against independent references (loops, scipy, torch.distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from aebench.models import create_model
from aebench.models.avae import AVAE
from aebench.models.beta_tcvae import mss_log_weights, tc_decomposition
from aebench.models.lipschitz_vae import LipschitzVAE, certified_radius
from aebench.models.smooth_encoder import SmoothEncoder, entropic_wasserstein2
from aebench.nn.gaussian import continuous_bernoulli_nll, kl_standard_normal
from aebench.nn.lipschitz import BjorckLinear, bjorck_orthonormalize
from tests.helpers import build_model

BASELINES = ["vae", "beta_vae", "beta_tcvae", "lipschitz_vae", "smooth_encoder", "avae"]


def _posterior_batch(b: int = 6, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, d, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(b, d, generator=g, dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(b, d, generator=g, dtype=torch.float64)
    return z, mu, logvar


# ----------------------------------------------------------------------------------------------- likelihoods
def test_continuous_bernoulli_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    probs = torch.cat([torch.rand(200, generator=g) * 0.98 + 0.01, torch.tensor([0.5, 0.4999, 0.5003, 0.505])])
    x = torch.rand(probs.shape, generator=g)
    expected = -torch.distributions.ContinuousBernoulli(probs=probs.double()).log_prob(x.double())
    ours = continuous_bernoulli_nll(probs.view(-1, 1).double(), x.view(-1, 1).double())
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_kl_matches_torch_distributions():
    _, mu, logvar = _posterior_batch()
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(kl_standard_normal(mu, logvar), expected)


# ----------------------------------------------------------------------------------------------- β-TCVAE
@pytest.mark.parametrize("estimator", ["mss", "mws"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tc_terms_telescope_to_log_q_minus_log_p(estimator, seed):
    z, mu, logvar = _posterior_batch(b=7, d=4, seed=seed)
    parts = tc_decomposition(z, mu, logvar, dataset_size=500, estimator=estimator)
    # Independent reference: scipy densities in float64.
    zs, ms, ss = z.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())
    expected = norm.logpdf(zs, ms, ss).sum(axis=1) - norm.logpdf(zs).sum(axis=1)
    total = (parts["mi"] + parts["tc"] + parts["dwkl"]).numpy()
    np.testing.assert_allclose(total, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("b", "n"), [(2, 10), (5, 100), (64, 60_000), (7, 7)])
def test_mss_rows_sum_to_one_with_one_over_n_on_the_diagonal(b, n):
    log_w = mss_log_weights(b, n).double()
    np.testing.assert_allclose(torch.logsumexp(log_w, dim=1).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(torch.diagonal(log_w).exp().numpy(), 1.0 / n, rtol=1e-6)
    # Column 0 holds 1/N only in row 0 (the published code's bug put it in every row).
    if b > 2:
        np.testing.assert_allclose(log_w[1 : b - 1, 0].exp().numpy(), 1.0 / (b - 1), rtol=1e-6)


def _loop_density(z_i: np.ndarray, mu_j: np.ndarray, sd_j: np.ndarray, dims: list[int]) -> float:
    value = 1.0
    for d in dims:
        value *= math.exp(-0.5 * ((z_i[d] - mu_j[d]) / sd_j[d]) ** 2) / (math.sqrt(2 * math.pi) * sd_j[d])
    return value


def _brute_force_log_qz(z, mu, logvar, weights):
    """log q̂(z_i) and Σ_d log q̂(z_id) with explicit loops over i, j, d in float64."""
    zs, ms, sds = z.numpy(), mu.numpy(), np.exp(0.5 * logvar.numpy())
    b, dim = zs.shape
    joint, marginals = [], []
    for i in range(b):
        joint.append(math.log(sum(weights[i][j] * _loop_density(zs[i], ms[j], sds[j], list(range(dim)))
                                  for j in range(b))))
        marginals.append(sum(math.log(sum(weights[i][j] * _loop_density(zs[i], ms[j], sds[j], [d]) for j in range(b)))
                             for d in range(dim)))
    return np.array(joint), np.array(marginals)


def test_mws_log_qz_matches_brute_force():
    z, mu, logvar = _posterior_batch(b=5, d=3, seed=3)
    n = 200
    parts = tc_decomposition(z, mu, logvar, dataset_size=n, estimator="mws")
    weights = [[1.0 / (5 * n)] * 5 for _ in range(5)]
    joint, marginals = _brute_force_log_qz(z, mu, logvar, weights)
    np.testing.assert_allclose(parts["log_qz"].numpy(), joint, rtol=1e-10)
    np.testing.assert_allclose(parts["log_prod_qzi"].numpy(), marginals, rtol=1e-10)


def test_mss_log_qz_matches_brute_force_with_diagonal_weights():
    b, n = 5, 50
    z, mu, logvar = _posterior_batch(b=b, d=3, seed=4)
    parts = tc_decomposition(z, mu, logvar, dataset_size=n, estimator="mss")
    m = b - 1
    weights = [[1.0 / n if j == i else (n - m) / (n * m) if j == (i + 1) % b else 1.0 / m for j in range(b)]
               for i in range(b)]
    joint, marginals = _brute_force_log_qz(z, mu, logvar, weights)
    np.testing.assert_allclose(parts["log_qz"].numpy(), joint, rtol=1e-10)
    np.testing.assert_allclose(parts["log_prod_qzi"].numpy(), marginals, rtol=1e-10)


def test_beta_tcvae_requires_dataset_size_and_batch_within_it():
    with pytest.raises(ValueError, match="dataset_size"):
        create_model("beta_tcvae", image_shape=(1, 32, 32))
    model = create_model("beta_tcvae", image_shape=(1, 32, 32), dataset_size=4)
    with pytest.raises(ValueError, match="smaller than the batch"):
        model.loss(torch.rand(8, 1, 32, 32))


# ----------------------------------------------------------------------------------------------- LipschitzVAE
def _lipschitz_model(**kwargs) -> LipschitzVAE:
    torch.manual_seed(0)
    model = build_model("lipschitz_vae", **kwargs)
    # Move the raw weights off Björck's fixed point (as training does) so the constraint has work to do.
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, BjorckLinear):
                layer.weight.mul_(1.0 + 0.3 * torch.rand_like(layer.weight))
    return model


def test_bjorck_layers_have_unit_spectral_norm():
    model = _lipschitz_model().eval()
    layers = [m for m in model.modules() if isinstance(m, BjorckLinear)]
    assert len(layers) == 15  # three networks of five linear layers (1024-200-200-200-200-D and back)
    for layer in layers:
        top = torch.linalg.matrix_norm(layer.baked_weight().double(), ord=2).item()
        assert abs(top - 1.0) < 1e-3
        # The training-mode weight (3 iterations) is not converged but never exceeds norm 1.
        assert torch.linalg.matrix_norm(layer.orthonormal_weight().double(), ord=2).item() <= 1.0 + 1e-5
    w = torch.randn(30, 70, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = w / torch.linalg.matrix_norm(w, ord=2) * 1.5
    singular = torch.linalg.svdvals(bjorck_orthonormalize(w, 60))
    np.testing.assert_allclose(singular.numpy(), 1.0, atol=1e-3)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_empirical_lipschitz_ratio_never_exceeds_l(mode):
    lip = 3.0
    # float64, so that rounding cannot push the ratio of very close pairs past L.
    model = _lipschitz_model(lipschitz=lip).double().train(mode == "train")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(256, 1024, generator=g, dtype=torch.float64)
    # Far pairs and very close pairs (which probe the local gradient norm).
    b = torch.cat([torch.rand(128, 1024, generator=g, dtype=torch.float64),
                   a[128:] + 1e-3 * torch.randn(128, 1024, generator=g, dtype=torch.float64)])
    za = torch.rand(256, model.latent_dim, generator=g, dtype=torch.float64) * 4 - 2
    zb = torch.cat([torch.rand(128, model.latent_dim, generator=g, dtype=torch.float64) * 4 - 2,
                    za[128:] + 1e-3 * torch.randn(128, model.latent_dim, generator=g, dtype=torch.float64)])
    with torch.no_grad():
        for net, (u, v) in ((model.mean_net, (a, b)), (model.std_net, (a, b)), (model.decoder_net, (za, zb))):
            ratio = (net(u) - net(v)).norm(dim=1) / (u - v).norm(dim=1)
            assert ratio.max().item() <= lip * (1 + 1e-9)
        ratio = (model.std(a.view(-1, 1, 32, 32)) - model.std(b.view(-1, 1, 32, 32))).norm(dim=1) / (a - b).norm(dim=1)
        assert ratio.max().item() <= lip / 4 * (1 + 1e-9)  # the sigmoid is ¼-Lipschitz


def test_exported_lipschitz_vae_gives_the_same_outputs():
    model = _lipschitz_model().eval()
    exported = model.export()
    assert not any(isinstance(m, BjorckLinear) for m in exported.modules())
    x = torch.rand(10, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(exported.encode(x), model.encode(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(exported.std(x), model.std(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(exported.reconstruct(x), model.reconstruct(x), rtol=1e-5, atol=1e-5)


def test_certified_radius_is_the_largest_root():
    a, b, c, r = 2.0, 1.5, 1.0, 3.0
    s = torch.tensor([0.01, 0.1, 0.3, 0.6, 2.0], dtype=torch.float64)
    radius = certified_radius(s, r, a, b, c)
    for s_i, r_i in zip(s.tolist(), radius.tolist(), strict=True):
        if 4 * s_i**2 >= r**2 / (2 * a**2):
            assert r_i == 0.0
            continue
        value = (c**2 + b**2) * r_i**2 + 4 * c * s_i * r_i + 4 * s_i**2 - r**2 / (2 * a**2)
        assert abs(value) < 1e-9 and r_i > 0
    assert radius[-1] == 0.0 and radius[0] > radius[1]


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64)])
def test_lipschitz_vae_trains_and_is_attacked_on_colour_images(shape):
    from aebench.attacks import run_attack

    torch.manual_seed(0)
    model = build_model("lipschitz_vae", image_shape=shape)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)  # the recipe's (Barrett et al.'s) learning rate
    losses = []
    for _ in range(8):
        terms = model.loss(x)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["loss"]))
    assert losses[-1] < losses[0]
    model.eval()
    result = run_attack(model, x, attack="max_damage", budget=1.0, optimizer="pgd", steps=3, restarts=1,
                        generator=torch.Generator().manual_seed(2))
    assert result.x_adv.shape == x.shape and bool(((result.x_adv - x).flatten(1).norm(dim=1) <= 1 + 1e-5).all())


def test_a_fixed_or_bounded_std_makes_the_certificate_non_vacuous():
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    learned = _lipschitz_model().eval()
    bounded = _lipschitz_model(std_bound_radius=5.0).eval()
    fixed = _lipschitz_model(fixed_std=0.01).eval()
    with torch.no_grad():
        a = bounded.lipschitz_decoder
        assert bool((bounded.std(x).norm(dim=1) <= 5.0 / (8 ** 0.5 * a)).all())  # Barrett et al.'s cap
        assert bool((bounded.certified_radius(x, 5.0) > 0).all())
        # σ ≡ γ: s = γ√D, the certificate has the closed form of certified_radius with that s.
        s = torch.full((8,), 0.01 * fixed.latent_dim ** 0.5)
        expected = certified_radius(s, 5.0, fixed.lipschitz_decoder, fixed.lipschitz_mean, fixed.lipschitz_std)
        torch.testing.assert_close(fixed.certified_radius(x, 5.0), expected)
        assert float(expected.min()) > 0
        assert float(learned.certified_radius(x, 5.0).max()) >= 0.0


# ----------------------------------------------------------------------------------------------- Smooth Encoder
def _brute_force_wd(mu_a, sd_a, mu_b, sd_b, gamma):
    """min over Gaussian couplings (correlation r per dimension) of E(a − b)² − γ·H[π], by scipy."""
    total = 0.0
    for ma, sa, mb, sb in zip(mu_a, sd_a, mu_b, sd_b, strict=True):
        def objective(r, ma=ma, sa=sa, mb=mb, sb=sb):
            cost = (ma - mb) ** 2 + sa**2 + sb**2 - 2 * r * sa * sb
            entropy = 0.5 * math.log((2 * math.pi * math.e) ** 2 * sa**2 * sb**2 * (1 - r**2))
            return cost - gamma * entropy

        best = minimize_scalar(objective, bounds=(-1 + 1e-13, 1 - 1e-13), method="bounded",
                               options={"xatol": 1e-13})
        total += best.fun
    return total


@pytest.mark.parametrize("gamma", [0.05, 0.9, 3.0])
def test_entropic_w2_matches_brute_force_coupling(gamma):
    g = torch.Generator().manual_seed(5)
    mu_a, mu_b, lv_a, lv_b = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(4))
    ours = entropic_wasserstein2(mu_a, lv_a, mu_b, lv_b, gamma)
    sd_a, sd_b = torch.exp(0.5 * lv_a).numpy(), torch.exp(0.5 * lv_b).numpy()
    for i in range(4):
        expected = _brute_force_wd(mu_a[i].numpy(), sd_a[i], mu_b[i].numpy(), sd_b[i], gamma)
        assert ours[i].item() == pytest.approx(expected, abs=1e-4)


def test_entropic_w2_tends_to_exact_w2():
    g = torch.Generator().manual_seed(6)
    mu_a, mu_b, lv_a, lv_b = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(4))
    exact = ((mu_a - mu_b) ** 2 + (torch.exp(0.5 * lv_a) - torch.exp(0.5 * lv_b)) ** 2).sum(dim=1)
    errors = [(entropic_wasserstein2(mu_a, lv_a, mu_b, lv_b, gamma) - exact).abs().max().item()
              for gamma in (1e-2, 1e-4, 1e-6)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    torch.testing.assert_close(entropic_wasserstein2(mu_a, lv_a, mu_b, lv_b, 0.0), exact)


@pytest.mark.parametrize("norm_name", ["linf", "l2"])
def test_select_stays_in_its_ball_and_the_image_box(norm_name):
    epsilon = 0.3 if norm_name == "linf" else 2.0
    torch.manual_seed(0)
    model: SmoothEncoder = build_model("smooth_encoder", epsilon=epsilon, select_norm=norm_name, select_steps=4)
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(7))
    x[:4] = 0.0
    x[4:8] = 1.0  # saturated images: the box constraint binds
    x_b = model.select(x)
    delta = (x_b - x).flatten(1)
    size = delta.abs().max(dim=1).values if norm_name == "linf" else delta.norm(dim=1)
    assert size.max().item() <= epsilon + 1e-5 and size.max().item() > 0.5 * epsilon
    assert x_b.min() >= 0 and x_b.max() <= 1 and not x_b.requires_grad
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient leaks from Select


def test_select_increases_the_wasserstein_objective():
    torch.manual_seed(0)
    model: SmoothEncoder = build_model("smooth_encoder", select_steps=10)
    x = torch.rand(16, 1, 32, 32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        mu, lv = model.posterior(x)
        random_b = (x + 0.3 * (2 * torch.rand_like(x) - 1)).clamp(0, 1)
        wd_random = entropic_wasserstein2(mu, lv, *model.posterior(random_b), model.gamma).sum()
    x_b = model.select(x)
    with torch.no_grad():
        wd_selected = entropic_wasserstein2(mu, lv, *model.posterior(x_b), model.gamma).sum()
    assert wd_selected > wd_random


# ----------------------------------------------------------------------------------------------- AVAE
def test_avae_consistency_term_sends_no_gradient_to_the_decoder():
    torch.manual_seed(0)
    model: AVAE = build_model("avae").train()
    terms = model.loss(torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(9)))
    terms["consistency"].backward()
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in model.decoder.parameters())
    encoder_grads = [p.grad for p in [*model.encoder.parameters(), *model.head.parameters()]]
    assert all(g is not None for g in encoder_grads) and sum(g.abs().sum() for g in encoder_grads) > 0


# ----------------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_loss_falls_in_a_few_adam_steps(name):
    torch.manual_seed(0)
    model = (create_model(name, image_shape=(1, 32, 32), latent_dim=8, dataset_size=64) if name == "beta_tcvae"
             else build_model(name)).train()
    g = torch.Generator().manual_seed(10)
    # Tiny structured data: 8 random prototypes plus noise, so there is something to learn quickly.
    prototypes = torch.rand(8, 1, 32, 32, generator=g)
    x = (prototypes.repeat(8, 1, 1, 1) + 0.05 * torch.randn(64, 1, 32, 32, generator=g)).clamp(0, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = model.loss(x)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_registered_baselines_document_their_papers():
    from aebench.models import list_models

    assert set(BASELINES) <= set(list_models())
    for name in BASELINES:
        cls = type(build_model(name))
        assert cls.paper and cls.description
