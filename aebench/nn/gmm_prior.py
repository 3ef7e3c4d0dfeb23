"""The fixed Gaussian-mixture prior of the GMM-DAE family.

Ghosh-style deterministic autoencoders regularised towards a GMM (Saseendran et al., "Shape your
Space", NeurIPS 2021; and the robust variant, NeurIPS 2022). As in the authors' robust code, the K
means are s·e_k (one-hot, s = 10), every component is N(μ_k, σ²I) and the weights are equal
(official-code-spec.md §3). For K < D the last D − K coordinates have the marginal N(0, σ²).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GMMPrior(nn.Module):
    """An equal-weight mixture of K isotropic Gaussians with means ``scale·e_k``.

    Args:
        latent_dim: D.
        num_components: K, at most D (the means are one-hot directions).
        scale: s, the distance of each mean from the origin.
        std: σ of every component.
    """

    def __init__(self, latent_dim: int, num_components: int, scale: float = 10.0, std: float = 1.0) -> None:
        super().__init__()
        if not 1 <= num_components <= latent_dim:
            raise ValueError(
                f"num_components must be between 1 and latent_dim={latent_dim} (means are one-hot), "
                f"got {num_components}."
            )
        if std <= 0:
            raise ValueError(f"GMM component std must be positive, got {std}.")
        self.latent_dim, self.num_components = int(latent_dim), int(num_components)
        self.scale, self.std = float(scale), float(std)
        means = torch.zeros(num_components, latent_dim)
        means[torch.arange(num_components), torch.arange(num_components)] = scale
        self.register_buffer("means", means, persistent=False)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes: a uniform component, then a Gaussian around its mean."""
        # Draw on the generator's device, then move: a CPU generator then gives the same codes on every device
        # (PyTorch refuses a CPU generator for a CUDA draw).
        where = generator.device if generator is not None else self.means.device
        component = torch.randint(self.num_components, (n,), generator=generator, device=where)
        noise = torch.randn(n, self.latent_dim, generator=generator, device=where)
        return self.means[component.to(self.means.device)] + self.std * noise.to(self.means.device)

    def marginal_cdf(self, z: Tensor) -> Tensor:
        """Per-coordinate mixture CDF F_d(z_d) = (1/K) Σ_k Φ((z_d − μ_{k,d}) / σ), shape of ``z``."""
        u = (z.unsqueeze(-2) - self.means) / self.std  # (..., K, D)
        return (0.5 * (1.0 + torch.erf(u / math.sqrt(2.0)))).mean(dim=-2)

    def covariance(self) -> Tensor:
        """Σ_GMM = σ²I + (1/K) Σ_k (μ_k − μ̄)(μ_k − μ̄)ᵀ (law of total variance, equal weights).

        The authors' code uses σ where σ² belongs; the two agree for the σ = 1 that every recipe uses.
        """
        centred = self.means - self.means.mean(dim=0, keepdim=True)
        between = centred.T @ centred / self.num_components
        return self.std**2 * torch.eye(self.latent_dim, device=self.means.device) + between
