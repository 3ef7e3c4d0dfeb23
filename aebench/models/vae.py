"""VAE and β-VAE on the shared trunks, and the Gaussian-posterior base class of every VAE baseline.

- ``vae``: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
  (https://arxiv.org/abs/1312.6114).
- ``beta_vae``: Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
  Framework", ICLR 2017 (https://openreview.net/forum?id=Sy2fzU9gl).

Both use the DAE family's encoder trunk with a mean and a log-variance head (``Linear(F, D)`` each) and
the same decoder, so every model of Table 1 has the same capacity (DESIGN.md, "Networks"). ``encode``
returns the posterior mean, so attacks see a deterministic function; the prior is N(0, I).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from aebench.models.base import MODELS, AutoEncoder
from aebench.nn.gaussian import (
    GaussianHead,
    check_likelihood,
    kl_standard_normal,
    reconstruction_nll,
    reparameterize,
)
from aebench.nn.networks import build_decoder, build_encoder_trunk


class GaussianVAE(AutoEncoder):
    """A VAE with a diagonal-Gaussian posterior and an N(0, I) prior; the base of every VAE baseline.

    Subclasses change the objective by overriding :meth:`loss`, and the networks by overriding
    :meth:`posterior` and :meth:`decode`. Constructor defaults that differ between the registered
    variants live in ``variant_defaults`` (as in the GMM-DAE family), so a checkpoint only needs the
    arguments its creator passed.

    Args:
        image_shape: (C, H, W).
        latent_dim: D.
        beta: Weight of the KL term (1 = the ELBO).
        likelihood: "gaussian" (fixed variance), "bernoulli" (BCE) or "continuous_bernoulli".
        obs_variance: v of the Gaussian likelihood, −log p(x|z) = ‖x − x̂‖²/(2v) + const.
    """

    description = "Variational autoencoder (ELBO, N(0, I) prior)"
    paper = "Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014"
    variant_defaults: ClassVar[dict[str, Any]] = {"beta": 1.0, "likelihood": "bernoulli", "obs_variance": 0.5}

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        beta: float | None = None,
        likelihood: str | None = None,
        obs_variance: float | None = None,
    ) -> None:
        super().__init__(image_shape, latent_dim)
        defaults = self.variant_defaults
        self.beta = float(defaults["beta"] if beta is None else beta)
        self.likelihood = str(defaults["likelihood"] if likelihood is None else likelihood)
        self.obs_variance = float(defaults["obs_variance"] if obs_variance is None else obs_variance)
        check_likelihood(self.likelihood, self.obs_variance)
        if self.beta < 0:
            raise ValueError(f"beta (the KL weight) must be ≥ 0, got {self.beta}.")
        self._build_networks()

    def _build_networks(self) -> None:
        trunk, features = build_encoder_trunk(self.image_shape)
        self.encoder = trunk
        self.head = GaussianHead(features, self.latent_dim)
        self.decoder = build_decoder(self.image_shape, self.latent_dim)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Parameters (μ, log σ²) of q(z|x), each (B, D)."""
        return self.head(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean μ(x): deterministic in train and eval mode."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:  # noqa: D102
        return self.decoder(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N draws from the N(0, I) prior (on the CPU when ``generator`` is a CPU generator)."""
        device = generator.device if generator is not None else self.device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def reconstruction_nll(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """Per-sample −log p(x|z) under this model's likelihood."""
        return reconstruction_nll(x_hat, x, self.likelihood, self.obs_variance)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Batch mean of −log p(x|z) + β·KL(q(z|x) ‖ N(0, I)) with one reparameterised sample."""
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar)
        rec = self.reconstruction_nll(self.decode(z), x).mean()
        kl = kl_standard_normal(mu, logvar).mean()
        return {"loss": rec + self.beta * kl, "rec": rec, "kl": kl}


@MODELS.register("vae")
class VAE(GaussianVAE):
    """The plain VAE (β = 1)."""


@MODELS.register("beta_vae")
class BetaVAE(GaussianVAE):
    """β-VAE: the ELBO with the KL weighted by β > 1."""

    description = "β-VAE (KL weighted by β)"
    paper = "Higgins et al., β-VAE, ICLR 2017"
    # β = 10: KL_beta of fc_beta_VAE_bjorck.json in Barrett et al.'s code (official-code-spec.md §9),
    # the code base the Table-1 authors took their attacks from; the paper's value is in its missing appendix.
    variant_defaults: ClassVar[dict[str, Any]] = {**GaussianVAE.variant_defaults, "beta": 10.0}


__all__ = ["VAE", "BetaVAE", "GaussianVAE"]
