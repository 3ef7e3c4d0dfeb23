"""Diagonal-Gaussian posteriors and the likelihoods of the VAE-family baselines.

- Posterior head, reparameterisation and KL to N(0, I): Kingma & Welling, "Auto-Encoding Variational
  Bayes", ICLR 2014 (https://arxiv.org/abs/1312.6114).
- Continuous Bernoulli: Loaiza-Ganem & Cunningham, "The continuous Bernoulli: fixing a pervasive error
  in variational autoencoders", NeurIPS 2019 (https://arxiv.org/abs/1907.06845).

Every per-sample function returns a (B,) tensor: the sum over latent dimensions or pixels, so that a
model's loss is the batch mean of a per-example negative ELBO.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Likelihood = Literal["gaussian", "bernoulli", "continuous_bernoulli"]
LIKELIHOODS: tuple[str, ...] = ("gaussian", "bernoulli", "continuous_bernoulli")
LOG_2PI = math.log(2.0 * math.pi)
# Probabilities are kept this far from 0 and 1 so that logs stay finite for saturated sigmoids.
PROB_EPS = 1e-6
# Below this |1 − 2λ| the continuous-Bernoulli normaliser uses its Taylor series (0/0 otherwise).
_CB_TAYLOR_RADIUS = 1e-2


class GaussianHead(nn.Module):
    """Two linear heads mapping trunk features to the posterior mean and log-variance.

    Args:
        features: Size F of the trunk's output.
        latent_dim: Size D of the latent code.
    """

    def __init__(self, features: int, latent_dim: int) -> None:
        super().__init__()
        self.mean = nn.Linear(features, latent_dim)
        self.logvar = nn.Linear(features, latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Return (μ, log σ²), each (B, D)."""
        return self.mean(h), self.logvar(h)


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """Z = μ + σ ⊙ ε with ε ~ N(0, I); σ = exp(½ log σ²) is the standard deviation (not the variance)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per sample: ½ Σ_d (μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Element-wise log N(z; μ, σ²) (broadcasting, no reduction)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def gaussian_nll(x_hat: Tensor, x: Tensor, variance: float) -> Tensor:
    """−log N(x; x̂, v·I) per sample without its constant: ‖x − x̂‖² / (2v).

    v = 1 is pythae's "mse" (½ SSE); v = ½ (AVAE's ``obs_var``) gives the plain SSE.
    """
    return (x - x_hat).pow(2).flatten(1).sum(dim=1) / (2.0 * variance)


def bernoulli_nll(probs: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy per sample; x may be grey-level in [0, 1] (the usual VAE practice)."""
    probs = probs.clamp(PROB_EPS, 1.0 - PROB_EPS)
    return F.binary_cross_entropy(probs, x, reduction="none").flatten(1).sum(dim=1)


def continuous_bernoulli_log_normalizer(probs: Tensor) -> Tensor:
    """Log C(λ) with C(λ) = 2·artanh(1 − 2λ) / (1 − 2λ) and C(½) = 2, element-wise.

    Near λ = ½ the exact form is 0/0, so it uses artanh(t)/t = 1 + t²/3 + t⁴/5 + O(t⁶) there; the
    exact branch is evaluated at a safe t so that its (unused) gradient is never NaN.
    """
    probs = probs.clamp(PROB_EPS, 1.0 - PROB_EPS)
    t = 1.0 - 2.0 * probs
    near_half = t.abs() < _CB_TAYLOR_RADIUS
    safe_t = torch.where(near_half, torch.full_like(t, _CB_TAYLOR_RADIUS), t)
    exact = torch.log(torch.atanh(safe_t) / safe_t)
    t2 = t * t
    taylor = torch.log1p(t2 / 3.0 + t2 * t2 / 5.0)
    return math.log(2.0) + torch.where(near_half, taylor, exact)


def continuous_bernoulli_nll(probs: Tensor, x: Tensor) -> Tensor:
    """−log CB(x | λ) per sample: −[x log λ + (1 − x) log(1 − λ) + log C(λ)] summed over pixels."""
    log_norm = continuous_bernoulli_log_normalizer(probs)
    return (bernoulli_nll(probs, x) - log_norm.flatten(1).sum(dim=1))


def check_likelihood(likelihood: str, variance: float) -> None:
    """Raise a clear error for an unknown likelihood or a non-positive Gaussian variance."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}.")
    if not variance > 0:
        raise ValueError(f"obs_variance must be positive (the Gaussian likelihood's v), got {variance!r}.")


def reconstruction_nll(x_hat: Tensor, x: Tensor, likelihood: str, variance: float = 1.0) -> Tensor:
    """Per-sample negative log-likelihood of ``x`` under the decoder output ``x_hat`` ∈ [0, 1].

    Args:
        x_hat: Decoder output: the Gaussian mean, or the (continuous) Bernoulli probability λ.
        x: Images in [0, 1].
        likelihood: "gaussian" (fixed variance ``variance``), "bernoulli" or "continuous_bernoulli".
        variance: v of the Gaussian likelihood; ignored otherwise.

    Returns:
        A (B,) tensor.
    """
    if likelihood == "gaussian":
        return gaussian_nll(x_hat, x, variance)
    if likelihood == "bernoulli":
        return bernoulli_nll(x_hat, x)
    if likelihood == "continuous_bernoulli":
        return continuous_bernoulli_nll(x_hat, x)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}.")


__all__ = [
    "LIKELIHOODS",
    "GaussianHead",
    "Likelihood",
    "bernoulli_nll",
    "check_likelihood",
    "continuous_bernoulli_log_normalizer",
    "continuous_bernoulli_nll",
    "gaussian_log_density",
    "gaussian_nll",
    "kl_standard_normal",
    "reconstruction_nll",
    "reparameterize",
]
