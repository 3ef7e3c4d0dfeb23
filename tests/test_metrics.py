"""Tests for aebench.metrics: MS-SSIM (paper and standard), l2 distance, the metric registry.

The paper's MS-SSIM is checked against an independent, loop-based float64 numpy/scipy re-statement of the
jorge-pessoa algorithm (spec §7.3) and against closed forms; the standard MS-SSIM against torchmetrics.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm_msssim

from aebench.metrics import (
    ATTACK_KINDS,
    METRICS,
    AttackOutcome,
    MetricSpec,
    l2_distance,
    metrics_for,
    msssim,
    msssim_paper,
    standard_scales,
    standard_weights,
)
from aebench.registry import UnknownNameError

WEIGHTS = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]


# --------------------------------------------------------------------------------------------------------------
# independent reference for the paper's MS-SSIM: one image, float64, explicit loops
# --------------------------------------------------------------------------------------------------------------


def _reference_window(size: int) -> np.ndarray:
    g = np.array([math.exp(-((i - size // 2) ** 2) / (2 * 1.5**2)) for i in range(size)])
    g /= g.sum()
    return np.outer(g, g)


def _reference_pool(img: np.ndarray) -> np.ndarray:
    c, h, w = img.shape
    out = np.zeros((c, h // 2, w // 2))
    for k in range(c):
        for i in range(h // 2):
            for j in range(w // 2):
                out[k, i, j] = img[k, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean()
    return out


def reference_msssim_paper(img1: np.ndarray, img2: np.ndarray) -> float:
    """jorge-pessoa msssim(img1, img2, window_size=6, normalize='relu') for one (C, H, W) image pair."""
    cs_levels, ssim_levels = [], []
    for _ in range(5):
        c, h, w = img1.shape
        big = 255.0 if img1.max() > 128 else 1.0
        small = -1.0 if img1.min() < -0.5 else 0.0
        data_range = big - small
        c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
        win = _reference_window(min(6, h, w))
        cs_maps, ssim_maps = [], []
        for k in range(c):
            a, b = img1[k], img2[k]
            mu_a = correlate2d(a, win, mode="valid")
            mu_b = correlate2d(b, win, mode="valid")
            var_a = correlate2d(a * a, win, mode="valid") - mu_a**2
            var_b = correlate2d(b * b, win, mode="valid") - mu_b**2
            cov = correlate2d(a * b, win, mode="valid") - mu_a * mu_b
            cs_map = (2 * cov + c2) / (var_a + var_b + c2)
            cs_maps.append(cs_map)
            ssim_maps.append((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * cs_map)
        cs_levels.append(max(float(np.mean(cs_maps)), 0.0))
        ssim_levels.append(max(float(np.mean(ssim_maps)), 0.0))
        if w > 1:
            img1, img2 = _reference_pool(img1), _reference_pool(img2)
    out = 1.0
    for j in range(4):
        out *= cs_levels[j] ** WEIGHTS[j] * ssim_levels[4] ** WEIGHTS[4]
    return out


def _pairs(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of image pairs from very similar to unrelated and anti-correlated (so relu clips somewhere)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    levels = torch.linspace(0.02, 0.8, shape[0], dtype=torch.float64).view(-1, 1, 1, 1)
    b = (a + levels * noise).clamp(0, 1)
    b[-1] = 1 - a[-1]  # anti-correlated: negative contrast terms
    if shape[0] > 2:
        b[-2] = torch.rand(shape[1:], generator=g, dtype=torch.float64)  # unrelated
    return a.to(dtype), b.to(dtype)


# --------------------------------------------------------------------------------------------------------------
# msssim_paper
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 1, 32, 32), (3, 3, 64, 64), (2, 1, 28, 28)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_msssim_paper_matches_reference(shape, dtype):
    a, b = _pairs(shape, seed=sum(shape), dtype=dtype)
    ours = msssim_paper(a, b)
    assert ours.shape == (shape[0],) and ours.dtype == dtype
    expected = [reference_msssim_paper(a[i].double().numpy(), b[i].double().numpy()) for i in range(shape[0])]
    np.testing.assert_allclose(ours.double().numpy(), expected, atol=1e-5 if dtype == torch.float32 else 1e-10)


def test_msssim_paper_data_range_is_guessed_from_first_argument_per_image():
    a, b = _pairs((3, 1, 32, 32), seed=7, dtype=torch.float64)
    a, b = a.clone(), b.clone()
    a[0] *= 255  # L = 255 for image 0 when it is img1 ...
    b[0] *= 255
    a[1] = 2 * a[1] - 1  # ... and L = 2 for image 1 (min < -0.5)
    b[1] = 2 * b[1] - 1
    batched = msssim_paper(a, b)
    single = torch.cat([msssim_paper(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single)
    expected = [reference_msssim_paper(a[i].numpy(), b[i].numpy()) for i in range(3)]
    np.testing.assert_allclose(batched.numpy(), expected, atol=1e-10)
    # Only img1 sets L: an image in [0, 255] against one in [0, 1] depends on the order.
    x, y = a[:1], _pairs((1, 1, 32, 32), seed=8, dtype=torch.float64)[0]
    assert not torch.allclose(msssim_paper(x, y), msssim_paper(y, x))
    np.testing.assert_allclose(msssim_paper(y, x).item(), reference_msssim_paper(y[0].numpy(), x[0].numpy()))


@pytest.mark.parametrize(
    ("c1", "c2", "data_range"),
    [(0.2, 0.6, 1.0), (0.9, 0.1, 1.0), (200.0, 100.0, 255.0), (-0.8, -0.3, 2.0), (-0.8, 0.4, 2.0)],
)
def test_msssim_paper_constant_images_closed_form(c1, c2, data_range):
    # Constant images: every variance is 0, so cs_j = C2 / C2 = 1 and ssim_j = (2 c1 c2 + C1) / (c1² + c2² + C1)
    # at every scale; the paper's product is then ssim^(4 w5).
    a = torch.full((1, 3, 32, 32), c1, dtype=torch.float64)
    b = torch.full((1, 3, 32, 32), c2, dtype=torch.float64)
    k1 = (0.01 * data_range) ** 2
    s = max((2 * c1 * c2 + k1) / (c1**2 + c2**2 + k1), 0.0)  # relu: opposite signs give 0
    assert msssim_paper(a, b).item() == pytest.approx(s ** (4 * 0.1333), abs=1e-10)
    # The standard combination takes ssim_M once, with the renormalised last weight (3 scales at 32 px).
    if data_range == 1.0:
        assert msssim(a, b).item() == pytest.approx(s ** (0.3001 / (0.0448 + 0.2856 + 0.3001)), abs=1e-10)


def test_msssim_paper_tiny_image_by_hand():
    # A 1×1 image: every scale is the same single pixel with a 1-tap window, cs = 1 and ssim is luminance only.
    a = torch.tensor([[[[0.5]]]], dtype=torch.float64)
    b = torch.tensor([[[[0.25]]]], dtype=torch.float64)
    s = (2 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4)
    assert msssim_paper(a, b).item() == pytest.approx(s ** (4 * 0.1333), abs=1e-12)


def test_msssim_paper_window_sizes_at_32px():
    # 32 px: scales 32, 16, 8, 4, 2 with windows 6, 6, 6, 4, 2 (spec §7.3); a 2×2 checker pattern at the last scale
    # is only visible to the (off-centre) 2-tap window, so it must match the reference exactly.
    a, b = _pairs((1, 1, 32, 32), seed=3, dtype=torch.float64)
    np.testing.assert_allclose(msssim_paper(a, b).item(), reference_msssim_paper(a[0].numpy(), b[0].numpy()))


# --------------------------------------------------------------------------------------------------------------
# msssim (standard) vs torchmetrics
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "scales"), [((4, 1, 32, 32), 3), ((4, 3, 32, 32), 3), ((3, 3, 64, 64), 4)])
def test_msssim_matches_torchmetrics(shape, scales):
    assert standard_scales(*shape[2:]) == scales
    # In float64 the two differ by ~1e-8 only because torchmetrics stores the betas as float32.
    for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-7)):
        a, b = _pairs(shape, seed=sum(shape), dtype=dtype)
        ours = msssim(a, b)
        # kernel_size only feeds torchmetrics' size check when the Gaussian window is used (the window comes
        # from sigma: 11 taps); 7 lets the 28–64 px sizes through it without changing the values.
        ref = tm_msssim(
            a, b, data_range=1.0, betas=standard_weights(scales), normalize="relu", reduction="none", kernel_size=7
        )
        torch.testing.assert_close(ours, ref.to(dtype), atol=tol, rtol=0)


def test_msssim_five_scales_is_torchmetrics_default():
    a, b = _pairs((2, 1, 192, 192), seed=4)
    assert standard_scales(192, 192) == 5
    ref = tm_msssim(a, b, data_range=1.0, normalize="relu", reduction="none")  # all defaults: 11 taps, 5 betas
    torch.testing.assert_close(msssim(a, b), ref, atol=1e-4, rtol=0)


def test_standard_scales_and_weights():
    assert [standard_scales(s, s) for s in (11, 12, 28, 32, 64, 95, 96, 256)] == [1, 2, 3, 3, 4, 4, 5, 5]
    assert standard_scales(6, 6) == 1
    assert sum(standard_weights(3)) == pytest.approx(1.0)
    assert standard_weights(5) == tuple(WEIGHTS)  # published weights, not renormalised


# --------------------------------------------------------------------------------------------------------------
# properties shared by both
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [msssim_paper, msssim])
@pytest.mark.parametrize("shape", [(3, 1, 28, 28), (3, 3, 32, 32), (2, 3, 64, 64)])
def test_identity_and_range(fn, shape):
    a, b = _pairs(shape, seed=11)
    torch.testing.assert_close(fn(a, a), torch.ones(shape[0]), atol=1e-6, rtol=0)
    values = fn(a, b)
    assert bool(((values >= 0) & (values <= 1)).all())
    assert values[-1].item() == 0.0  # the anti-correlated pair is clipped to 0 by relu
    assert values[0].item() > 0.9  # the nearly identical pair


@pytest.mark.parametrize("fn", [msssim_paper, msssim])
def test_differentiable_with_finite_gradients(fn):
    a, b = _pairs((3, 1, 32, 32), seed=5)
    a.requires_grad_(True)
    fn(a, b).sum().backward()
    assert a.grad is not None and bool(torch.isfinite(a.grad).all())
    assert a.grad[-1].abs().max().item() == 0.0  # relu-clipped pair
    assert a.grad[0].abs().max().item() > 0


@pytest.mark.parametrize("fn", [msssim_paper, msssim])
def test_gradcheck(fn):
    g = torch.Generator().manual_seed(0)
    a = torch.rand((1, 1, 16, 16), generator=g, dtype=torch.float64, requires_grad=True)
    b = (a.detach() + 0.1 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert torch.autograd.gradcheck(lambda x: fn(x, b), (a,))


@pytest.mark.parametrize("fn", [msssim_paper, msssim, l2_distance])
def test_bad_inputs(fn):
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\)"):
        fn(x, torch.rand(2, 1, 32, 31))
    if fn is not l2_distance:
        with pytest.raises(ValueError, match=r"\(1, 32, 32\)"):
            fn(x[0], x[0])
    with pytest.raises(TypeError):
        fn(x, x.to(torch.int64))


def test_too_small_images_raise():
    with pytest.raises(ValueError, match="5×5"):
        msssim(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5))
    with pytest.raises(ValueError, match=r"\(1, 1, 32, 32\)"):
        msssim(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), scales=5)
    with pytest.raises(ValueError, match="3×40"):
        msssim_paper(torch.rand(1, 1, 3, 40), torch.rand(1, 1, 3, 40))


def test_l2_distance():
    a = torch.zeros(2, 1, 2, 2)
    b = torch.zeros(2, 1, 2, 2)
    b[0] = 0.5  # four pixels of 0.5: norm 1
    b[1, 0, 0, 0] = 1.0
    torch.testing.assert_close(l2_distance(a, b), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(l2_distance(a, a), torch.zeros(2))


# --------------------------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------------------------


def _outcome(attack: str, same_input: bool = False, same_recon: bool = False) -> AttackOutcome:
    x, x_adv = _pairs((3, 1, 32, 32), seed=1)
    recon, adv_recon = _pairs((3, 1, 32, 32), seed=2)
    if same_input:
        x_adv = x.clone()
    if same_recon:
        adv_recon = recon.clone()
    target = _pairs((3, 1, 32, 32), seed=3)[0] if attack == "latent" else None
    return AttackOutcome(attack, x, x_adv, recon, adv_recon, torch.randn(3), target=target)


EXPECTED_DIRECTIONS = {
    "attack_loss": True,
    "l2_target_adv_recon": True,
    "l2_recon_adv_recon": False,
    "l2_input_adv": True,
    "msssim_paper_target_adv_recon": False,
    "msssim_paper_input_adv": False,
    "msssim_paper_recon_adv_recon": True,
    "msssim_target_adv_recon": False,
    "msssim_input_adv": False,
    "msssim_recon_adv_recon": True,
}


def test_every_spec_is_complete():
    assert set(METRICS) == set(EXPECTED_DIRECTIONS)
    for name, spec in METRICS.items():
        assert isinstance(spec, MetricSpec) and spec.name == name
        assert isinstance(spec.higher_is_better, bool)
        assert spec.higher_is_better == EXPECTED_DIRECTIONS[name]
        assert spec.attacks and set(spec.attacks) <= set(ATTACK_KINDS)
        assert spec.description


@pytest.mark.parametrize("attack", ATTACK_KINDS)
def test_all_metrics_evaluate_per_image(attack):
    outcome = _outcome(attack)
    for spec in metrics_for(attack):
        values = spec(outcome)
        assert values.shape == (3,), spec.name
        assert bool(torch.isfinite(values).all()), spec.name


@pytest.mark.parametrize("attack", ATTACK_KINDS)
def test_unchanged_inputs_and_reconstructions(attack):
    outcome = _outcome(attack, same_input=True, same_recon=True)
    ones, zeros = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(METRICS["msssim_paper_input_adv"](outcome), ones, atol=1e-6, rtol=0)
    torch.testing.assert_close(METRICS["msssim_input_adv"](outcome), ones, atol=1e-6, rtol=0)
    torch.testing.assert_close(METRICS["l2_input_adv"](outcome), zeros)
    torch.testing.assert_close(METRICS["l2_recon_adv_recon"](outcome), zeros)
    if attack == "max_damage":
        torch.testing.assert_close(METRICS["msssim_paper_recon_adv_recon"](outcome), ones, atol=1e-6, rtol=0)
        torch.testing.assert_close(METRICS["msssim_recon_adv_recon"](outcome), ones, atol=1e-6, rtol=0)


def test_paper_argument_order():
    # Only the data-range guess reads the first argument; push x_adv above 128 to see which one is first.
    for attack, first in (("latent", "x_adv"), ("max_damage", "x")):
        o = _outcome(attack)
        o = AttackOutcome(attack, o.x, o.x_adv * 255, o.recon, o.adv_recon, o.objective, target=o.target)
        got = METRICS["msssim_paper_input_adv"](o)
        expected = msssim_paper(o.x_adv, o.x) if first == "x_adv" else msssim_paper(o.x, o.x_adv)
        torch.testing.assert_close(got, expected)
    o = _outcome("latent")
    torch.testing.assert_close(METRICS["msssim_paper_target_adv_recon"](o), msssim_paper(o.adv_recon, o.target))


def test_applicability_filtering():
    latent = {s.name for s in metrics_for("latent")}
    damage = {s.name for s in metrics_for("max_damage")}
    assert "l2_target_adv_recon" in latent and "l2_target_adv_recon" not in damage
    assert "msssim_paper_recon_adv_recon" in damage and "msssim_paper_recon_adv_recon" not in latent
    assert {"attack_loss", "msssim_paper_input_adv", "msssim_input_adv"} <= latent & damage
    chosen = metrics_for("max_damage", ["msssim_paper_target_adv_recon", "attack_loss", "attack_loss"])
    assert [s.name for s in chosen] == ["attack_loss"]
    assert [s.name for s in metrics_for("latent", "attack_loss")] == ["attack_loss"]
    with pytest.raises(UnknownNameError, match="attack_loss"):
        metrics_for("latent", ["atack_loss"])
    with pytest.raises(ValueError, match="max_damage"):
        metrics_for("pgd")
    with pytest.raises(ValueError, match="latent"):
        METRICS["l2_target_adv_recon"](_outcome("max_damage"))


def test_attack_outcome_validation():
    o = _outcome("latent")
    with pytest.raises(ValueError, match="x_adv"):
        AttackOutcome("latent", o.x, o.x_adv[:, :, :16], o.recon, o.adv_recon, o.objective)
    with pytest.raises(ValueError, match="objective"):
        AttackOutcome("latent", o.x, o.x_adv, o.recon, o.adv_recon, o.objective[:2])
    with pytest.raises(ValueError, match="attack kind"):
        AttackOutcome("noise", o.x, o.x_adv, o.recon, o.adv_recon, o.objective)
    no_target = AttackOutcome("latent", o.x, o.x_adv, o.recon, o.adv_recon, o.objective)
    with pytest.raises(ValueError, match="target"):
        METRICS["msssim_target_adv_recon"](no_target)
