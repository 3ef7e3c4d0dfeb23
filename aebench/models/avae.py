"""AVAE: the autoencoding VAE, an ELBO plus a self-consistency term between x and its reconstruction.

Cemgil, Ghaisas, Dvijotham, Gowal & Kohli, "The Autoencoding Variational Autoencoder", NeurIPS 2020
(https://arxiv.org/abs/2012.03715); official JAX code ``google-deepmind/deepmind-research/avae``
(``vae.py::avae_elbo``), summarised in baselines.md §A4.

Per batch, with x̃ = stop_gradient(g(z)) the reconstruction of the same sample z ~ q(z|x) and
(μ̃, σ̃²) = f(x̃), the loss is −mean(ELBO) − A where

    A = E[log p_ρ(z̃|z)] + H[q(z̃|x̃)],   p_ρ(z̃|z) = N(ρz, (1 − ρ²)I),

both expectations in closed form. Choices (documented in baselines/avae.yaml):

- z = μ + σ ⊙ ε with the standard deviation σ; the official encoder multiplies ε by the *variance*
  (a bug, baselines.md §A4).
- x̃ reuses the ELBO's reconstruction, detached: the same value as the official code's second decode
  with the same RNG key, for one decoder pass less. The decoder therefore gets no gradient from A.
- The constant of E[log p_ρ] is the correct −(D/2)·log(2π(1 − ρ²)) (the code's differs; no effect on
  gradients).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor

from aebench.models.base import MODELS
from aebench.models.vae import GaussianVAE
from aebench.nn.gaussian import LOG_2PI, kl_standard_normal, reparameterize


def self_consistency(mu: Tensor, logvar: Tensor, mu_t: Tensor, logvar_t: Tensor, rho: float) -> Tensor:
    """A per sample: E_{q(z|x) q(z̃|x̃)}[log N(z̃; ρz, (1 − ρ²)I)] + H[N(μ̃, σ̃²)], shape (B,).

    Args:
        mu: Posterior mean of x, (B, D).
        logvar: Posterior log-variance of x.
        mu_t: Posterior mean of the reconstruction x̃.
        logvar_t: Posterior log-variance of x̃.
        rho: Coupling ρ ∈ (0, 1).
    """
    var_cond = 1.0 - rho * rho
    # E[(z̃ − ρz)²] = σ̃² + ρ²σ² + (μ̃ − ρμ)² for independent z ~ q(z|x), z̃ ~ q(z̃|x̃).
    sq = logvar_t.exp() + rho * rho * logvar.exp() + (mu_t - rho * mu).pow(2)
    dim = mu.shape[-1]
    expected_log_p = -sq.sum(dim=-1) / (2.0 * var_cond) - 0.5 * dim * (LOG_2PI + math.log(var_cond))
    entropy = 0.5 * (LOG_2PI + 1.0 + logvar_t).sum(dim=-1)
    return expected_log_p + entropy


@MODELS.register("avae")
class AVAE(GaussianVAE):
    """Autoencoding VAE: ELBO + self-consistency with coupling ρ (the decoder sees only the ELBO).

    Args:
        image_shape: (C, H, W).
        latent_dim: D.
        rho: Coupling ρ of p_ρ(z̃|z) = N(ρz, (1 − ρ²)I).
        beta: Weight of the ELBO's KL (1 in the paper).
        likelihood: "gaussian" (the paper's, v = ``obs_variance``), "bernoulli" or "continuous_bernoulli".
        obs_variance: v of the Gaussian likelihood (official ``obs_var`` = 0.5).
    """

    description = "Autoencoding VAE (ELBO + self-consistency of the reconstruction's code)"
    paper = "Cemgil et al., The Autoencoding Variational Autoencoder, NeurIPS 2020"
    variant_defaults: ClassVar[dict[str, Any]] = {"beta": 1.0, "likelihood": "gaussian", "obs_variance": 0.5}

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        rho: float = 0.975,
        beta: float | None = None,
        likelihood: str | None = None,
        obs_variance: float | None = None,
    ) -> None:
        super().__init__(image_shape, latent_dim, beta=beta, likelihood=likelihood, obs_variance=obs_variance)
        if not 0.0 < rho < 1.0:
            raise ValueError(f"rho must lie strictly between 0 and 1 (p_ρ has variance 1 − ρ²), got {rho}.")
        self.rho = float(rho)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """−mean(ELBO) − mean(A); A reaches the encoder through (μ, σ) of x and (μ̃, σ̃) of x̃."""
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar)
        x_hat = self.decode(z)
        rec = self.reconstruction_nll(x_hat, x).mean()
        kl = kl_standard_normal(mu, logvar).mean()
        # Detaching x̃ is what keeps A's gradient away from the decoder (official: stop_gradient).
        mu_t, logvar_t = self.posterior(x_hat.detach())
        consistency = self_consistency(mu, logvar, mu_t, logvar_t, self.rho).mean()
        return {"loss": rec + self.beta * kl - consistency, "rec": rec, "kl": kl, "consistency": consistency}


__all__ = ["AVAE", "self_consistency"]
