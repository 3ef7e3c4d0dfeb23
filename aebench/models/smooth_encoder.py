"""SE: Smooth Encoders, a VAE trained to keep the posteriors of x and a selected neighbour x_b close.

Cemgil, Ghaisas, Dvijotham & Kohli, "Adversarially Robust Representations with Smooth Encoders",
ICLR 2020 (https://openreview.net/forum?id=H1gfFaEYDS). There is no public code; this follows the
paper's Algorithm 1 as summarised in baselines.md §A3:

    x_b = Select(x_a; L, ε)                      (PGD in input space, maximising WD_{2,γ} of the posteriors)
    E1  = ‖x_a − g(μ_a + σ_a ⊙ u)‖² / (2v)       (only x_a is reconstructed)
    E2  = ½(‖μ_a‖² + ‖μ_b‖² + Tr(Σ_a + Σ_b))
    E   = E1 + E2 + λ·WD_{2,γ}(q_a, q_b)

Choices forced by the missing code (each a constructor argument, defaults in baselines/smooth_encoder.yaml):

- WD_{2,γ} = min over couplings π of E_π‖z_a − z_b‖² − γ·H[π] (the entropy form, so that λ·WD keeps the
  posterior entropies and E2 cannot collapse Σ to 0), in the closed form for diagonal Gaussians with
  its constant −γ·log(2πe) per dimension (exact, and → W2² as γ → 0).
- γ = 2(1 − ρ²)/ρ and λ = 1/γ, from reading the pair prior N(0, [[I, ρI], [ρI, I]]) into the objective
  (baselines.md §A3, derived); with λ = 1/γ the entropy terms enter with weight 1, as in an ELBO.
- Select: L∞ PGD from a uniform random start, step 2.5ε/L (Madry et al.), the encoder left in its
  current mode, gradients taken with ``torch.autograd.grad`` w.r.t. the perturbation only; x_b is
  detached. The objective is the same WD_{2,γ} (or ‖μ_b − μ_a‖² with ``select_objective="mean"``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from aebench.models.base import MODELS
from aebench.models.vae import GaussianVAE
from aebench.nn.gaussian import reparameterize

SELECT_NORMS: tuple[str, ...] = ("linf", "l2")
SELECT_OBJECTIVES: tuple[str, ...] = ("wd", "mean")


def entropic_wasserstein2(mu_a: Tensor, logvar_a: Tensor, mu_b: Tensor, logvar_b: Tensor, gamma: float) -> Tensor:
    """WD_{2,γ} between N(μ_a, diag σ_a²) and N(μ_b, diag σ_b²), summed over dimensions, shape (B,).

    The optimal coupling is Gaussian and factorises; per dimension, with a = σ_a, b = σ_b and
    c = 4a²b² / (γ + √(γ² + 16a²b²)) the optimal cross-covariance,

        WD = (μ_a − μ_b)² + a² + b² − 2c − (γ/2)·log(γc/2) − γ·log(2πe),

    using a²b² − c² = γc/2 (stable). γ = 0 gives the exact W2² = ‖Δμ‖² + ‖σ_a − σ_b‖².
    """
    if gamma < 0:
        raise ValueError(f"gamma (the entropic regularisation) must be ≥ 0, got {gamma}.")
    var_a, var_b = logvar_a.exp(), logvar_b.exp()
    mean_term = (mu_a - mu_b).pow(2)
    if gamma == 0:
        return (mean_term + (torch.exp(0.5 * logvar_a) - torch.exp(0.5 * logvar_b)).pow(2)).sum(dim=-1)
    ab2 = torch.exp(logvar_a + logvar_b)
    c = 4.0 * ab2 / (gamma + torch.sqrt(gamma * gamma + 16.0 * ab2))
    entropy_term = 0.5 * gamma * torch.log(0.5 * gamma * c) + gamma * math.log(2.0 * math.pi * math.e)
    return (mean_term + var_a + var_b - 2.0 * c - entropy_term).sum(dim=-1)


def project(x_b: Tensor, x: Tensor, epsilon: float, norm: str) -> Tensor:
    """Project x_b onto {x + δ : ‖δ‖ ≤ ε} ∩ [0, 1]^d (clamping after the ball keeps x_b in it, x ∈ [0, 1])."""
    delta = x_b - x
    if norm == "linf":
        delta = delta.clamp(-epsilon, epsilon)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        delta = delta * (epsilon / norms).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0)


@MODELS.register("smooth_encoder")
class SmoothEncoder(GaussianVAE):
    """Smooth Encoder: VAE + λ·WD_{2,γ} between the posteriors of x and a PGD-selected neighbour.

    Args:
        image_shape: (C, H, W).
        latent_dim: D.
        epsilon: Radius ε of the selection set (in [0, 1] pixel units, ``select_norm``).
        select_steps: L, the number of PGD steps of Select.
        step_size: PGD step (default 2.5ε/L).
        select_norm: "linf" or "l2".
        select_objective: "wd" (maximise WD_{2,γ}) or "mean" (maximise ‖μ_b − μ_a‖²).
        rho: Pair-prior coupling ρ; sets γ = 2(1 − ρ²)/ρ unless ``gamma`` is given.
        gamma: Entropic regularisation γ > 0 (overrides ρ).
        wd_weight: λ, the weight of WD_{2,γ} (default 1/γ).
        likelihood: "gaussian" (the paper's, v = ``obs_variance``), "bernoulli" or "continuous_bernoulli".
        obs_variance: v of the Gaussian likelihood.
    """

    description = "Smooth Encoder (PGD-selected neighbours, entropic W2 between posteriors)"
    paper = "Cemgil et al., Adversarially Robust Representations with Smooth Encoders, ICLR 2020"
    variant_defaults: ClassVar[dict[str, Any]] = {"beta": 1.0, "likelihood": "gaussian", "obs_variance": 0.5}

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        epsilon: float = 0.3,
        select_steps: int = 5,
        step_size: float | None = None,
        select_norm: str = "linf",
        select_objective: str = "wd",
        rho: float = 0.8,
        gamma: float | None = None,
        wd_weight: float | None = None,
        likelihood: str | None = None,
        obs_variance: float | None = None,
    ) -> None:
        super().__init__(image_shape, latent_dim, likelihood=likelihood, obs_variance=obs_variance)
        if select_norm not in SELECT_NORMS or select_objective not in SELECT_OBJECTIVES:
            raise ValueError(
                f"select_norm must be one of {SELECT_NORMS} and select_objective one of {SELECT_OBJECTIVES}, "
                f"got {select_norm!r}, {select_objective!r}."
            )
        if not epsilon > 0 or int(select_steps) < 1:
            raise ValueError(f"need epsilon > 0 and select_steps ≥ 1, got {epsilon}, {select_steps}.")
        if gamma is None and not 0.0 < rho < 1.0:
            raise ValueError(f"rho must lie strictly between 0 and 1, got {rho}; or pass gamma directly.")
        self.gamma = float(2.0 * (1.0 - rho * rho) / rho if gamma is None else gamma)
        if not self.gamma > 0:
            raise ValueError(f"gamma must be positive (WD_2,γ is weighted by 1/γ by default), got {self.gamma}.")
        self.wd_weight = float(1.0 / self.gamma if wd_weight is None else wd_weight)
        self.epsilon, self.select_steps = float(epsilon), int(select_steps)
        self.step_size = float(2.5 * epsilon / select_steps if step_size is None else step_size)
        self.select_norm, self.select_objective = select_norm, select_objective

    def _select_objective(self, mu_a: Tensor, logvar_a: Tensor, x_b: Tensor) -> Tensor:
        mu_b, logvar_b = self.posterior(x_b)
        if self.select_objective == "mean":
            return (mu_b - mu_a).pow(2).sum()
        return entropic_wasserstein2(mu_a, logvar_a, mu_b, logvar_b, self.gamma).sum()

    def select(self, x: Tensor) -> Tensor:
        """Select(x; L, ε): L PGD steps that maximise the latent discrepancy; returns detached x_b.

        Only the perturbation is differentiated (``torch.autograd.grad``), so no gradient reaches the
        parameters; x_b stays in the ε ball around x and in [0, 1] after every step.
        """
        with torch.no_grad():
            mu_a, logvar_a = self.posterior(x)
            start = torch.rand_like(x) * 2.0 - 1.0
            if self.select_norm == "l2":  # a random direction at a uniform radius inside the L2 ball
                start = start / start.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                start = start * torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype)
            x_b = project(x + self.epsilon * start, x, self.epsilon, self.select_norm)
        for _ in range(self.select_steps):
            x_b.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self._select_objective(mu_a, logvar_a, x_b), x_b)
            with torch.no_grad():
                if self.select_norm == "linf":
                    step = grad.sign()
                else:
                    step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                x_b = project(x_b + self.step_size * step, x, self.epsilon, self.select_norm)
        return x_b.detach()

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """E1 + E2 + λ·WD_{2,γ}, batch means; the decoder gets gradient only from E1."""
        x_b = self.select(x)
        mu_a, logvar_a = self.posterior(x)
        mu_b, logvar_b = self.posterior(x_b)
        rec = self.reconstruction_nll(self.decode(reparameterize(mu_a, logvar_a)), x).mean()
        prior = 0.5 * (mu_a.pow(2) + mu_b.pow(2) + logvar_a.exp() + logvar_b.exp()).sum(dim=1).mean()
        wd = entropic_wasserstein2(mu_a, logvar_a, mu_b, logvar_b, self.gamma).mean()
        return {"loss": rec + prior + self.wd_weight * wd, "rec": rec, "prior": prior, "wd": wd}


__all__ = ["SmoothEncoder", "entropic_wasserstein2", "project"]
