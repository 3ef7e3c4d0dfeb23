"""Multi-scale structural similarity (MS-SSIM), per image, batched and differentiable.

Two variants live here, because the paper's numbers and a textbook MS-SSIM disagree on 28–64 px images:

* :func:`msssim_paper` reproduces the implementation behind the MS-SSIM columns of Table 1 of Saseendran et al.,
  "Trading off Image Quality for Robustness is not Necessary with Regularized Deterministic Autoencoders"
  (NeurIPS 2022): the jorge-pessoa ``pytorch_msssim.msssim(img1, img2, window_size=6, normalize='relu')`` function
  (v0.1, the version vendored in ``AKuzina/attack_vae/thirdparty/pytorch_msssim``), applied to one image per call as
  the authors' attack scripts did. It keeps that implementation's quirks (off-centre even-sized windows, data range
  guessed from ``img1`` at every scale, and the final product that drops the last contrast term and raises the last
  SSIM to four times its weight). See ``official-code-spec.md`` §7.3.
* :func:`msssim` is the standard combination of Wang, Simoncelli & Bovik, "Multiscale structural similarity for image
  quality assessment" (Asilomar 2003): Π_{j<M} cs_j^{β_j} · ssim_M^{β_M} with an 11-tap Gaussian window (σ = 1.5).
  Small images get fewer scales (3 at 28/32 px, 4 at 64 px, 5 from 96 px) with the first M default weights
  renormalised. It reproduces torchmetrics' ``multiscale_structural_similarity_index_measure`` with those betas,
  ``normalize="relu"``, ``data_range=1`` and ``reduction="none"``, including its border conventions (see
  :func:`msssim`).

Both return one value per image, shape (B,), in [0, 1] (the ``relu`` normalisation clips negative terms to 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: Wang et al. (2003) scale weights, finest scale first.
MSSSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: SSIM stabilising constants K1, K2 (C_i = (K_i·L)²).
K1, K2 = 0.01, 0.03
#: Window size the paper passed to the jorge-pessoa implementation.
PAPER_WINDOW_SIZE = 6
#: Gaussian σ used by both variants.
SIGMA = 1.5
#: Tap count of the standard window: torchmetrics derives it from σ as int(3.5σ + 0.5)·2 + 1 = 11.
STANDARD_WINDOW_SIZE = int(3.5 * SIGMA + 0.5) * 2 + 1
_STANDARD_PAD = (STANDARD_WINDOW_SIZE - 1) // 2


# ----------------------------------------------------------------------------------------------------------------
# input checks and small helpers
# ----------------------------------------------------------------------------------------------------------------


def _check_pair(a: Tensor, b: Tensor, name: str) -> None:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{name} expects two tensors, got {type(a).__name__} and {type(b).__name__}.")
    if a.dim() != 4:
        raise ValueError(f"{name} expects images of shape (B, C, H, W), got shape {tuple(a.shape)}.")
    if a.shape != b.shape:
        raise ValueError(f"{name} expects two batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if not a.is_floating_point() or not b.is_floating_point():
        raise TypeError(f"{name} expects floating-point images, got {a.dtype} and {b.dtype}.")
    if a.dtype != b.dtype:
        raise TypeError(f"{name} expects both images in one dtype, got {a.dtype} and {b.dtype}.")
    if a.shape[1] < 1 or a.shape[2] < 1 or a.shape[3] < 1:
        raise ValueError(f"{name} got an empty image, shape {tuple(a.shape)}.")


def _safe_pow(base: Tensor, exponent: float) -> Tensor:
    """``base ** exponent`` for base ≥ 0 with a zero (not NaN) gradient where base == 0.

    After the relu normalisation a term can be exactly 0; d(x^w)/dx is infinite there and relu's zero gradient
    would turn it into NaN. The value is unchanged (0^w = 0), only the gradient is made finite.
    """
    positive = base > 0
    return torch.where(positive, torch.where(positive, base, torch.ones_like(base)) ** exponent, torch.zeros_like(base))


def _local_moments(a: Tensor, b: Tensor, window: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Window means μ_a, μ_b and (co)variances σ_a², σ_b², σ_ab by one grouped cross-correlation ("valid")."""
    batch, channels = a.shape[:2]
    kernel = window.to(dtype=a.dtype, device=a.device).expand(channels, 1, *window.shape).contiguous()
    # One conv over the five stacked maps: the same work as five calls, in one kernel launch.
    stacked = torch.cat((a, b, a * a, b * b, a * b))
    out = F.conv2d(stacked, kernel, groups=channels)
    mu_a, mu_b, e_aa, e_bb, e_ab = out.split(batch)
    return mu_a, mu_b, e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b


# ----------------------------------------------------------------------------------------------------------------
# the paper's MS-SSIM (jorge-pessoa pytorch_msssim v0.1, window_size=6, normalize='relu')
# ----------------------------------------------------------------------------------------------------------------


def _paper_window(size: int) -> Tensor:
    """2-D Gaussian (σ = 1.5) of ``size`` taps, centred on tap ``size // 2`` as jorge-pessoa builds it.

    For even sizes (6, 4, 2) this centre is off by half a pixel, so the window is not symmetric; it is applied as a
    cross-correlation (``F.conv2d``), as in the reference, so the orientation matters and is kept.
    """
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(offsets**2) / (2 * SIGMA**2))
    g = g / g.sum()
    return torch.outer(g, g)


def _paper_scale_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Image shape at each scale of the paper's MS-SSIM, or ValueError if its pooling chain breaks.

    jorge-pessoa pools 2×2 after a scale only while the width is > 1, so square images of any size work (a 1×1
    image stays 1×1). A width > 1 with a height of 1 would make ``avg_pool2d`` fail there; we refuse it up front.
    The pool after the last scale (whose result the reference discards) is not done here.
    """
    shapes = [(height, width)]
    for _ in range(levels - 1):
        h, w = shapes[-1]
        if w > 1:
            if h < 2:
                raise ValueError(
                    f"msssim_paper cannot pool a {h}×{w} scale (from images of size {height}×{width}); "
                    "the jorge-pessoa implementation fails on this shape too. Use images at least 2^4 = 16 px "
                    "high and wide, or square images."
                )
            h, w = h // 2, w // 2
        shapes.append((h, w))
    return shapes


def _paper_data_range(img1: Tensor) -> Tensor:
    """Per-image data range L as jorge-pessoa guesses it from ``img1``.

    L = (255 if max > 128 else 1) − (−1 if min < −0.5 else 0).

    The reference guesses from the whole tensor it is given; the authors passed one image, so the guess is per
    image. It is redone at every scale from the pooled ``img1`` (pooling can move the max/min across a threshold).
    For images in [0, 1] L = 1 at every scale.
    """
    flat = img1.detach().flatten(1)
    hi = torch.where(flat.amax(dim=1) > 128, 255.0, 1.0)
    lo = torch.where(flat.amin(dim=1) < -0.5, -1.0, 0.0)
    return (hi - lo).to(img1.dtype)


def msssim_paper(a: Tensor, b: Tensor) -> Tensor:
    """MS-SSIM exactly as Table 1 of Saseendran et al. (2022) computed it, one value per image.

    Equals ``pytorch_msssim.msssim(img1=a[i:i+1], img2=b[i:i+1], window_size=6, normalize='relu')`` of
    jorge-pessoa/pytorch-msssim v0.1 for every i, computed for the whole batch at once:

    * 5 scales, weights w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2×2 average pooling between scales (skipped
      once the width is 1);
    * Gaussian window σ = 1.5 with min(6, h, w) taps at a scale of size h×w, centred on tap size//2, "valid"
      cross-correlation (no padding): at 32 px the windows are 6, 6, 6, 4, 2 on scales 32…2;
    * C1 = (0.01 L)², C2 = (0.03 L)², L guessed from ``a`` (img1) at every scale (see ``_paper_data_range``;
      L = 1 for images in [0, 1]); variances are not clamped;
    * cs_j and ssim_j are means over channels and pixels, each passed through relu;
    * the non-standard product Π_{j=1..4} cs_j^{w_j} · ssim_5^{4·w_5} (cs_5 is dropped and ssim_5 enters four
      times; Wang et al. use ssim_5^{w_5}).

    Argument order: the function is symmetric except for the data-range guess, which reads ``a`` only. The
    authors' scripts called (spec §7.1/§7.2):

    * latent attack, Table 1 "MSSSIM(x_r, x̃_a)": ``msssim(f(g(x+δ)), x_t)`` → ``a = x̃_a, b = x_t``;
    * latent attack, "MSSSIM(x_r, x_a)": ``msssim(x+δ, x)`` → ``a = x_a, b = x``;
    * max-damage attack, "MSSSIM(x_r, x_a)": ``msssim(x, x+δ)`` → ``a = x, b = x_a``;
    * max-damage attack, "MSSSIM(x̃_r, x̃_a)": ``msssim(f(g(x+δ)), f(g(x)))`` → ``a = x̃_a, b = x̃_r``.

    Args:
        a: First images (img1), shape (B, C, H, W).
        b: Second images (img2), same shape and dtype.

    Returns:
        Shape (B,) values in [0, 1]; differentiable in ``a`` and ``b`` (the gradient is 0 where a relu clips).

    Raises:
        ValueError: On wrong dimensions, mismatched shapes, or a shape whose pooling chain breaks.
        TypeError: On non-floating or mixed-dtype inputs.
    """
    _check_pair(a, b, "msssim_paper")
    levels = len(MSSSIM_WEIGHTS)
    shapes = _paper_scale_shapes(a.shape[2], a.shape[3], levels)
    cs_terms: list[Tensor] = []
    ssim_terms: list[Tensor] = []
    for level, (h, w) in enumerate(shapes):
        if level > 0 and (h, w) != tuple(a.shape[2:]):
            a = F.avg_pool2d(a, 2)
            b = F.avg_pool2d(b, 2)
        data_range = _paper_data_range(a).view(-1, 1, 1, 1)
        c1 = (K1 * data_range) ** 2
        c2 = (K2 * data_range) ** 2
        mu_a, mu_b, var_a, var_b, cov = _local_moments(a, b, _paper_window(min(PAPER_WINDOW_SIZE, h, w)))
        v1 = 2 * cov + c2
        v2 = var_a + var_b + c2
        cs_map = v1 / v2
        ssim_map = (2 * mu_a * mu_b + c1) * v1 / ((mu_a * mu_a + mu_b * mu_b + c1) * v2)
        cs_terms.append(torch.relu(cs_map.flatten(1).mean(dim=1)))
        ssim_terms.append(torch.relu(ssim_map.flatten(1).mean(dim=1)))
    # The reference computes prod(mcs[:-1]**w[:-1] * ssim[-1]**w[-1]): four cs factors, each times ssim_5^{w_5}.
    last = _safe_pow(ssim_terms[-1], MSSSIM_WEIGHTS[-1])
    out = torch.ones_like(last)
    for cs, weight in zip(cs_terms[:-1], MSSSIM_WEIGHTS[:-1], strict=True):
        out = out * (_safe_pow(cs, weight) * last)
    return out


# ----------------------------------------------------------------------------------------------------------------
# standard MS-SSIM (Wang et al. 2003), torchmetrics-compatible
# ----------------------------------------------------------------------------------------------------------------


def _standard_window() -> Tensor:
    """11-tap Gaussian (σ = 1.5), symmetric about its centre tap, as torchmetrics builds it."""
    offsets = torch.arange(STANDARD_WINDOW_SIZE, dtype=torch.float64) - _STANDARD_PAD
    g = torch.exp(-((offsets / SIGMA) ** 2) / 2)
    g = g / g.sum()
    return torch.outer(g, g)


def standard_scales(height: int, width: int) -> int:
    """Number of scales :func:`msssim` uses for an image of ``height``×``width``.

    The largest M ≤ 5 such that every scale before the last keeps a non-empty valid (fully inside the image)
    region for the 11-tap window, i.e. side ≥ 11, and the last scale can be reflect-padded by 5, i.e. side ≥ 6
    (sides halve, rounding down, between scales). This gives 3 scales at 28 and 32 px, 4 at 64 px and the
    standard 5 from 96 px. (torchmetrics' own size check with ``kernel_size=11`` is stricter,
    176 px for 5 scales; it does not change the values, only which sizes it accepts.)

    Raises:
        ValueError: If even one scale does not fit (a side below 6 px).
    """
    if min(height, width) <= _STANDARD_PAD:
        raise ValueError(
            f"msssim needs images of at least {_STANDARD_PAD + 1}×{_STANDARD_PAD + 1} px for its "
            f"{STANDARD_WINDOW_SIZE}-tap window, got {height}×{width}."
        )
    scales = 1
    side = min(height, width)
    while scales < len(MSSSIM_WEIGHTS) and side >= STANDARD_WINDOW_SIZE and side // 2 > _STANDARD_PAD:
        side //= 2
        scales += 1
    return scales


def standard_weights(scales: int) -> tuple[float, ...]:
    """The first ``scales`` Wang et al. weights, renormalised to sum to 1.

    With all 5 scales the published weights are returned unchanged (they sum to 1.0001 through rounding), so the
    full-size metric is exactly the textbook one and torchmetrics' default.
    """
    if not 1 <= scales <= len(MSSSIM_WEIGHTS):
        raise ValueError(f"MS-SSIM has 1 to {len(MSSSIM_WEIGHTS)} scales, got {scales}.")
    if scales == len(MSSSIM_WEIGHTS):
        return MSSSIM_WEIGHTS
    head = MSSSIM_WEIGHTS[:scales]
    total = math.fsum(head)
    return tuple(w / total for w in head)


def msssim(a: Tensor, b: Tensor, scales: int | None = None, data_range: float = 1.0) -> Tensor:
    """Standard MS-SSIM (Wang et al. 2003) with as many scales as the image size allows, one value per image.

    Π_{j<M} relu(cs_j)^{β_j} · relu(ssim_M)^{β_M} with an 11-tap Gaussian window (σ = 1.5), K = (0.01, 0.03),
    2×2 average pooling between scales and β the first M Wang et al. weights renormalised to sum to 1
    (M from :func:`standard_scales` unless given). Symmetric in ``a`` and ``b``.

    It matches torchmetrics' ``multiscale_structural_similarity_index_measure(a, b, data_range=data_range,
    betas=β, normalize="relu", reduction="none")`` (torchmetrics 1.9) and keeps its border conventions:

    * ssim_j is averaged over the whole image after reflect-padding each side by 5 px ("same" size), while cs_j is
      averaged over the valid region only (torchmetrics crops the padded border from the cs map);
    * variances (not the covariance) are clamped at 0 against round-off.

    The window is 11 taps at every scale; torchmetrics' ``kernel_size`` enters only its size check when the
    Gaussian window is used, so the number of scales is the only thing adapted to the image size.

    Args:
        a: First images, shape (B, C, H, W).
        b: Second images, same shape and dtype.
        scales: Number of scales M (1–5); default: the most that fit (3 at 28/32 px, 4 at 64 px).
        data_range: Range L of the pixel values (1 for images in [0, 1]).

    Returns:
        Shape (B,) values in [0, 1]; differentiable (the gradient is 0 where a relu clips).

    Raises:
        ValueError: On wrong dimensions, mismatched shapes, or images too small for the requested scales.
        TypeError: On non-floating or mixed-dtype inputs.
    """
    _check_pair(a, b, "msssim")
    height, width = a.shape[2], a.shape[3]
    fit = standard_scales(height, width)
    if scales is None:
        scales = fit
    elif scales > fit:
        raise ValueError(
            f"msssim with {scales} scales needs larger images than shape {tuple(a.shape)}; at most {fit} fit "
            f"(scales before the last need sides ≥ {STANDARD_WINDOW_SIZE} px, the last ≥ {_STANDARD_PAD + 1} px)."
        )
    weights = standard_weights(scales)
    window = _standard_window()
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    pad = _STANDARD_PAD
    out: Tensor | None = None
    for level, weight in enumerate(weights):
        if level > 0:
            a = F.avg_pool2d(a, 2)
            b = F.avg_pool2d(b, 2)
        last = level == scales - 1
        if last:
            # torchmetrics' ssim term: "same"-size map over the reflect-padded image, averaged over all pixels.
            pa = F.pad(a, (pad, pad, pad, pad), mode="reflect")
            pb = F.pad(b, (pad, pad, pad, pad), mode="reflect")
        else:
            # Only cs is used before the last scale, and torchmetrics averages it over the valid region, where
            # the padding never enters: a valid correlation of the unpadded image gives exactly that region.
            pa, pb = a, b
        mu_a, mu_b, var_a, var_b, cov = _local_moments(pa, pb, window)
        var_a = var_a.clamp_min(0.0)
        var_b = var_b.clamp_min(0.0)
        v1 = 2 * cov + c2
        v2 = var_a + var_b + c2
        if last:
            term = ((2 * mu_a * mu_b + c1) * v1 / ((mu_a * mu_a + mu_b * mu_b + c1) * v2)).flatten(1).mean(dim=1)
        else:
            term = (v1 / v2).flatten(1).mean(dim=1)
        factor = _safe_pow(torch.relu(term), weight)
        out = factor if out is None else out * factor
    assert out is not None  # scales ≥ 1
    return out
