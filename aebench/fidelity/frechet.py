"""The Fréchet distance between two Gaussians fitted to feature sets (Heusel et al., NeurIPS 2017).

Heusel, Ramsauer, Unterthiner, Nessler and Hochreiter, "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium" (NeurIPS 2017), define the Fréchet (2-Wasserstein) distance between N(μ₁, Σ₁) and
N(μ₂, Σ₂) as

    d² = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁ Σ₂)^{1/2}).

FID is this distance in the features of an ImageNet Inception-v3; aebench also evaluates it in the features of a
small classifier trained on the dataset itself (:mod:`aebench.fidelity.feature_classifier`). The value depends
entirely on the feature space (Kynkäänniemi et al., "The Role of ImageNet Classes in Fréchet Inception Distance",
ICLR 2023), so numbers from different extractors must never be compared.

How the trace term is computed (and why not with ``scipy.linalg.sqrtm``): Σ₁Σ₂ is not symmetric, and a general
matrix square root (Schur based, as pytorch-fid calls it) returns complex parts and loses accuracy when the
covariances are singular, which they are whenever there are fewer samples than features or a ReLU feature is dead.
Instead we use the identity tr((Σ₁Σ₂)^{1/2}) = tr((S Σ₂ S)^{1/2}) with S = Σ₁^{1/2}: both S and S Σ₂ S are
symmetric positive semi-definite, so ``numpy.linalg.eigh`` gives real eigenvalues; the tiny negative ones that
rounding produces are clipped to zero before the square root. The identity holds because Σ₁Σ₂ = S (S Σ₂ S) S⁻¹ is
similar to S Σ₂ S (and, by continuity, also when Σ₁ is singular). Everything runs in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

__all__ = ["feature_statistics", "frechet_distance"]


def _as_float64(array: ArrayLike | torch.Tensor) -> NDArray[np.float64]:
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float64).numpy()
    return np.asarray(array, dtype=np.float64)


def _psd_sqrt(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    # Symmetrise first: a covariance accumulated in floating point can be asymmetric in the last bits.
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _check_statistics(mu: NDArray[np.float64], sigma: NDArray[np.float64], which: str) -> None:
    if mu.ndim != 1:
        raise ValueError(f"mu{which} must be a vector, got shape {mu.shape}.")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"sigma{which} must be ({mu.shape[0]}, {mu.shape[0]}) to match mu{which}, got {sigma.shape}.")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{which}/sigma{which} contain NaN or infinite values (did the generator diverge?).")


def frechet_distance(
    mu1: ArrayLike | torch.Tensor,
    sigma1: ArrayLike | torch.Tensor,
    mu2: ArrayLike | torch.Tensor,
    sigma2: ArrayLike | torch.Tensor,
) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    Computed in float64 with the symmetric eigen-decomposition formulation described in the module docstring,
    so it is real and non-negative even for singular covariances.

    Args:
        mu1: Mean of the first Gaussian, shape (F,).
        sigma1: Covariance of the first Gaussian, shape (F, F).
        mu2: Mean of the second Gaussian, shape (F,).
        sigma2: Covariance of the second Gaussian, shape (F, F).

    Returns:
        ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁Σ₂)^{1/2}), clipped at 0 (rounding can make identical inputs give
        −1e-12).

    Raises:
        ValueError: If shapes disagree or a value is not finite.
    """
    m1, s1, m2, s2 = (_as_float64(a) for a in (mu1, sigma1, mu2, sigma2))
    _check_statistics(m1, s1, "1")
    _check_statistics(m2, s2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"The two feature spaces differ: mu1 has shape {m1.shape}, mu2 {m2.shape}.")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = m1 - m2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def feature_statistics(features: ArrayLike | torch.Tensor) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and unbiased covariance (divisor N − 1, as ``numpy.cov``) of a feature matrix, in float64.

    Args:
        features: (N, F) array or tensor, one row per image.

    Returns:
        ``(mu, sigma)`` with shapes (F,) and (F, F).

    Raises:
        ValueError: For fewer than two rows, a non-2-D input or non-finite values.
    """
    x = _as_float64(features)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, F) matrix, got shape {x.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"A covariance needs at least 2 feature vectors, got {x.shape[0]}.")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values.")
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, sigma
