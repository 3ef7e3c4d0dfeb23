"""GMM-DAE losses and FGSM against analytic values and independent numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from aebench.nn import dae_losses as L
from aebench.nn.fgsm import fgsm_latent
from aebench.nn.gmm_prior import GMMPrior
from aebench.nn.networks import build_decoder, build_encoder_trunk
from tests.helpers import build_model


@pytest.fixture
def prior() -> GMMPrior:
    return GMMPrior(latent_dim=10, num_components=10, scale=10.0, std=1.0)


def test_covariance_target_is_the_analytic_gmm_covariance(prior):
    sigma = prior.covariance().numpy()
    expected = np.full((10, 10), -1.0) + np.eye(10) * 11.0  # diag 10, off-diagonal −1 for s = 10, K = D = 10
    np.testing.assert_allclose(sigma, expected, atol=1e-6)


def test_prior_samples_have_the_analytic_covariance(prior):
    z = prior.sample(200_000, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(np.cov(z.numpy().T), prior.covariance().numpy(), atol=0.15)


def test_marginal_cdf_matches_scipy(prior):
    t = torch.linspace(-4, 14, 50).unsqueeze(1).repeat(1, 10)
    expected = 0.9 * norm.cdf(t[:, 0].numpy()) + 0.1 * norm.cdf(t[:, 0].numpy() - 10.0)
    np.testing.assert_allclose(prior.marginal_cdf(t)[:, 0].numpy(), expected, atol=1e-6)


def test_ks_loss_of_prior_samples_averages_one_over_6n(prior):
    n = 100
    gen = torch.Generator().manual_seed(0)
    values = [L.ks_loss(prior.sample(n, gen), prior).item() for _ in range(400)]
    # E[(U_(i) − i/N)²] summed over i/N tends to 1/(6N) (order statistics of uniforms).
    assert np.mean(values) == pytest.approx(1 / (6 * n), rel=0.08)


def test_estimated_weights_land_near_6_2n_and_3n(prior):
    n = 100
    ks = L.estimate_loss_weight(lambda a, b: L.pooled_ks_loss(a, b, prior), prior, n, num_draws=300)
    pair = L.estimate_loss_weight(lambda a, b: L.two_point_ks_loss(a, b, prior), prior, n, num_draws=300)
    assert ks == pytest.approx(6 * 2 * n, rel=0.08)
    assert pair == pytest.approx(3 * n, rel=0.08)


def _numpy_cov(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(axis=0)
    return c.T @ c / x.shape[0]


def test_coupled_covariance_loss_equals_numpy(prior):
    rng = np.random.default_rng(0)
    z, z_adv = rng.normal(size=(50, 10)) * 3, rng.normal(size=(50, 10)) * 2 + 1
    alpha = 0.5
    sigma = np.full((10, 10), -1.0) + np.eye(10) * 11.0
    target = np.block([[sigma, alpha * sigma], [alpha * sigma, sigma]])
    expected = np.mean((_numpy_cov(np.concatenate([z, z_adv], axis=1)) - target) ** 2)
    got = L.coupled_covariance_loss(torch.tensor(z), torch.tensor(z_adv), prior.double(), alpha).item()
    assert got == pytest.approx(expected, rel=1e-10)
    single = np.mean((_numpy_cov(z) - sigma) ** 2)
    assert L.covariance_loss(torch.tensor(z), prior.double()).item() == pytest.approx(single, rel=1e-10)


def test_ks_and_pair_losses_equal_numpy(prior):
    rng = np.random.default_rng(1)
    z, z_adv = rng.normal(size=(40, 10)) * 4, rng.normal(size=(40, 10)) * 4 + 2

    def cdf(t):
        return 0.9 * norm.cdf(t) + 0.1 * norm.cdf(t - 10.0)

    def ks(sample):
        s = np.sort(sample, axis=0)
        e = np.arange(1, len(s) + 1)[:, None] / len(s)
        return np.mean((cdf(s) - e) ** 2)

    dtype_prior = prior.double()
    pooled = L.pooled_ks_loss(torch.tensor(z), torch.tensor(z_adv), dtype_prior).item()
    assert pooled == pytest.approx(ks(np.concatenate([z, z_adv])), rel=1e-8)
    pair = np.mean((cdf(np.sort(z, axis=0)) - cdf(np.sort(z_adv, axis=0))) ** 2)
    value = L.two_point_ks_loss(torch.tensor(z), torch.tensor(z_adv), dtype_prior).item()
    assert value == pytest.approx(pair, rel=1e-8)


def test_network_parameter_counts_match_the_authors_nets():
    def count(module):
        return sum(p.numel() for p in module.parameters())

    trunk, features = build_encoder_trunk((1, 32, 32))
    assert features == 200
    assert count(trunk) + 200 * 10 + 10 == 1024 * 200 + 200 + 3 * (200 * 200 + 200) + 2010  # 327,610
    assert count(build_decoder((1, 32, 32), 10)) == 10 * 200 + 200 + 3 * (200 * 200 + 200) + 200 * 1024 + 1024
    convs = [(3, 128), (128, 256), (256, 512), (512, 1024)]
    conv_params = sum(ci * co * 16 + co + 2 * co for ci, co in convs)  # weights, bias, BN affine
    trunk, features = build_encoder_trunk((3, 32, 32))
    assert features == 4096 and count(trunk) == conv_params
    trunk, features = build_encoder_trunk((3, 64, 64))
    assert features == 16384 and count(trunk) == conv_params
    deconvs = [(1024, 512), (512, 256), (256, 128)]
    deconv_params = sum(ci * co * 16 + co + 2 * co for ci, co in deconvs) + 128 * 3 * 16 + 3
    assert count(build_decoder((3, 32, 32), 100)) == 100 * 4096 + 4096 + deconv_params
    assert count(build_decoder((3, 64, 64), 64)) == 64 * 16384 + 16384 + deconv_params
    x = torch.rand(2, 3, 64, 64)
    assert build_decoder((3, 64, 64), 64)(torch.randn(2, 64)).shape == x.shape


def test_fgsm_stays_in_the_linf_ball_and_the_box():
    model = build_model("robust_gmm_dae")
    x = torch.rand(16, 1, 32, 32)
    x_adv = fgsm_latent(model.encode, x, epsilon=0.3, step_size=0.375, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_fgsm_increases_latent_distance_over_its_random_start():
    torch.manual_seed(0)
    model = build_model("gmm_dae", latent_noise=0.0)
    x = torch.rand(256, 1, 32, 32) * 0.5
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(60):  # a briefly trained toy model, so gradients carry signal
        optim.zero_grad()
        model.loss(x)["loss"].backward()
        optim.step()
    model.eval()
    eps = 0.05
    with torch.no_grad():
        z = model.encode(x)
        start = x + (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) - 1) * eps
        random_dist = (model.encode(start.clamp(0, 1)) - z).norm(dim=1)
    x_adv = fgsm_latent(model.encode, x, eps, 1.25 * eps, torch.Generator().manual_seed(3))
    with torch.no_grad():
        adv_dist = (model.encode(x_adv) - z).norm(dim=1)
    assert adv_dist.mean() > 1.5 * random_dist.mean()


def test_cross_covariance_free_leaves_the_cross_blocks_out_of_the_loss():
    from aebench.nn import dae_losses
    from aebench.nn.gmm_prior import GMMPrior

    prior = GMMPrior(4, 4)
    z = prior.sample(2000, torch.Generator().manual_seed(0))
    independent = prior.sample(2000, torch.Generator().manual_seed(1))
    # Identical codes have cross-covariance Σ; independent ones ≈ 0. The free reading cannot tell them apart.
    free_same = dae_losses.block_covariance_loss(z, z, prior)
    free_indep = dae_losses.block_covariance_loss(z, independent, prior)
    expected = 0.5 * (dae_losses.covariance_loss(z, prior) + dae_losses.covariance_loss(independent, prior))
    torch.testing.assert_close(free_indep, expected)
    torch.testing.assert_close(free_same, dae_losses.covariance_loss(z, prior))
    # The literal eq. 8 pushes the cross block towards 0: identical codes cost about mean(Σ²)/2 more.
    sigma = prior.covariance()
    zero_same = dae_losses.coupled_covariance_loss(z, z, prior, 0.0)
    zero_indep = dae_losses.coupled_covariance_loss(z, independent, prior, 0.0)
    assert zero_same - zero_indep == pytest.approx(sigma.pow(2).mean().item() / 2, rel=0.1)


def test_the_two_readings_and_the_weight_coupling_are_model_arguments():
    from tests.helpers import build_model

    literal = build_model("augmented_gmm_dae")
    free = build_model("augmented_gmm_dae", cross_covariance="free", ks_form="split")
    assert (literal.cross_covariance, literal.ks_form, literal.lambda_cv_coupling) == ("zero", "pooled", "alpha")
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    terms = free.loss(x)
    assert set(terms) == {"loss", "rec", "ks", "cv"} and torch.isfinite(terms["loss"])
    paper = {"latent_dim": 10, "num_components": 10, "batch_size": 100}  # the Fashion-MNIST setting
    coupled = build_model("robust_gmm_dae", **paper)
    at_zero = build_model("robust_gmm_dae", **paper, lambda_cv_coupling="zero")
    augmented = build_model("augmented_gmm_dae", **paper)
    # λ_CV with α = 0 is the augmented model's weight; with the model's α = 0.5 it is about 2.4 times smaller.
    assert at_zero.weight_cv.item() == pytest.approx(augmented.weight_cv.item())
    assert coupled.weight_cv.item() == pytest.approx(0.436, abs=0.01)
    assert at_zero.weight_cv.item() == pytest.approx(1.067, abs=0.02)
    with pytest.raises(ValueError, match="would have no effect"):
        build_model("robust_gmm_dae", cross_covariance="free")
    with pytest.raises(ValueError, match="cross_covariance must be"):
        build_model("augmented_gmm_dae", cross_covariance="none")
