"""LipschitzVAE: a VAE whose encoder mean, encoder std and decoder are each L-Lipschitz, with a certificate.

Barrett, Camuto, Willetts & Rainforth, "Certifiably Robust Variational Autoencoders", AISTATS 2022
(https://arxiv.org/abs/2102.07559); official code ``FabianBarrett/Lipschitz_VAEs`` (baselines.md §A2).

Three separate MLPs (no shared trunk), each built from Björck-orthonormalised linear layers, GroupSort(2)
and a fixed scale L^(1/n) per layer (``aebench.nn.lipschitz``):

- encoder mean μ: 1024 → 200 → 200 → 200 → 200 → D;
- encoder std σ: the same widths, then a sigmoid, so σ ∈ (0, 1);
- decoder: D → 200 → 200 → 200 → 200 → 1024, then a sigmoid (the continuous-Bernoulli λ).

The widths are the DAE family's FC net (DESIGN.md, "Networks") rather than Barrett et al.'s 512-512, so
every model of Table 1 has the same width and depth. The objective is the plain negative ELBO with the
continuous-Bernoulli likelihood; there is no adversarial step, robustness comes from the architecture.

Every image shape uses the dense network on the flattened image (Björck orthonormalisation constrains dense
weights; an orthonormal convolution would need another parameterisation, which Barrett et al. do not use): 1024
inputs for MNIST/Fashion-MNIST, 3072 for SVHN, 12,288 for CelebA. That is what a dense LipschitzVAE is; on SVHN
and CelebA it has far fewer parameters than the DAE family's convolutional nets (2.27M and 7.79M against 22.9M and
24.2M; 0.98M against 0.66M for the fully connected nets of MNIST), which a table of those datasets should say. A
training step on 64 images took 283, 577 and 1,968 ms for the three shapes (one thread of a shared 2-core CPU).

The certificate needs a small ‖σ(x)‖: with a learned σ it is often vacuous (0 for every image). Barrett et al.
offer two remedies, both arguments here: ``fixed_std`` = γ makes σ(x) ≡ γ, and ``std_bound_radius`` = r* caps
‖σ(x)‖₂ at r*/(√8·a) − 1e-4 (a = the decoder's Lipschitz constant), which keeps the certificate non-vacuous for
reconstruction radius r*.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aebench.models.base import MODELS, AutoEncoder
from aebench.models.vae import GaussianVAE
from aebench.nn.gaussian import check_likelihood
from aebench.nn.lipschitz import LipschitzMLP
from aebench.nn.networks import FC_DEPTH, FC_WIDTH


def certified_radius(
    std_norm: Tensor, r: float, decoder_lipschitz: float, mean_lipschitz: float, std_lipschitz: float
) -> Tensor:
    """Barrett et al.'s margin: every ‖δ‖₂ ≤ R keeps the reconstruction r-robust (P(‖Δ‖₂ ≤ r) > ½).

    R is the largest root of (c² + b²)R² + 4cs·R + 4s² − r²/(2a²) ≤ 0 (baselines.md §A2), and 0 when
    4s² ≥ r²/(2a²) (no certificate).

    Args:
        std_norm: s = ‖σ(x)‖₂ per image, shape (B,).
        r: Reconstruction radius r > 0.
        decoder_lipschitz: a.
        mean_lipschitz: b.
        std_lipschitz: c.

    Returns:
        R per image, shape (B,).
    """
    if not r > 0:
        raise ValueError(f"the reconstruction radius r must be positive, got {r}.")
    a, b, c, s = decoder_lipschitz, mean_lipschitz, std_lipschitz, std_norm
    quad, lin, const = c * c + b * b, 4.0 * c * s, 4.0 * s * s - r * r / (2.0 * a * a)
    disc = (lin * lin - 4.0 * quad * const).clamp_min(0.0)
    root = (-lin + torch.sqrt(disc)) / (2.0 * quad)
    return torch.where(const < 0, root, torch.zeros_like(root))


class _LipschitzVAEBase(GaussianVAE):
    """Shared by the trainable model and its exported plain-MLP copy: σ = sigmoid(h), CB likelihood."""

    def _std_preactivation(self, x: Tensor) -> Tensor:
        return self.std_net(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) with σ = sigmoid(h(x)); log σ² = 2·logsigmoid(h) is exact for saturated h."""
        flat = x.flatten(1)
        if getattr(self, "fixed_std", None) is not None or getattr(self, "std_bound_radius", None) is not None:
            return self.mean_net(flat), 2.0 * torch.log(self.std(x))
        return self.mean_net(flat), 2.0 * F.logsigmoid(self._std_preactivation(flat))

    def std(self, x: Tensor) -> Tensor:
        """σ(x) ∈ (0, 1), shape (B, D), fixed or norm-capped when the model asks for it (module docstring)."""
        fixed = getattr(self, "fixed_std", None)
        if fixed is not None:
            return torch.full((x.shape[0], self.latent_dim), fixed, device=x.device, dtype=x.dtype)
        sigma = torch.sigmoid(self._std_preactivation(x.flatten(1)))
        radius = getattr(self, "std_bound_radius", None)
        if radius is not None:
            cap = radius / (math.sqrt(8.0) * self.lipschitz_decoder) - 1e-4
            norms = sigma.norm(dim=1, keepdim=True).clamp_min(1e-12)
            sigma = sigma * torch.clamp(cap / norms, max=1.0)
        return sigma

    def decode(self, z: Tensor) -> Tensor:  # noqa: D102
        return torch.sigmoid(self.decoder_net(z)).reshape(z.shape[0], *self.image_shape)

    def certified_radius(self, x: Tensor, r: float) -> Tensor:
        """Per-image certified input radius R(x) for reconstruction radius r (see :func:`certified_radius`)."""
        s = self.std(x).norm(dim=1)
        return certified_radius(s, r, self.lipschitz_decoder, self.lipschitz_mean, self.lipschitz_std)


@MODELS.register("lipschitz_vae")
class LipschitzVAE(_LipschitzVAEBase):
    """Certifiably robust VAE: three L-Lipschitz Björck/GroupSort MLPs and a continuous-Bernoulli ELBO.

    Args:
        image_shape: (C, H, W); the networks are dense on the flattened image.
        latent_dim: D.
        lipschitz: L of all three networks unless overridden below (Barrett et al.'s training scripts: 10).
        lipschitz_std: L of the encoder-std network (default ``lipschitz``).
        lipschitz_decoder: L of the decoder (default ``lipschitz``).
        bjorck_iterations: Björck iterations in training (their scripts: 3).
        eval_bjorck_iterations: Iterations of the eval-mode/exported weights (their export: 50).
        group_size: GroupSort group size (2).
        beta: KL weight (their ``KL_beta``; 1 = the ELBO).
        likelihood: "continuous_bernoulli" (theirs), "bernoulli" or "gaussian".
        obs_variance: v of the Gaussian likelihood.
        fixed_std: σ(x) ≡ this value (Barrett et al.'s fixed std), or None.
        std_bound_radius: Cap ‖σ(x)‖₂ so the certificate holds for this reconstruction radius r*, or None.
    """

    description = "Lipschitz-constrained VAE (Björck + GroupSort MLPs, certified radius)"
    paper = "Barrett et al., Certifiably Robust Variational Autoencoders, AISTATS 2022"
    variant_defaults: ClassVar[dict[str, Any]] = {
        "beta": 1.0, "likelihood": "continuous_bernoulli", "obs_variance": 0.5,
    }

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        lipschitz: float = 10.0,
        lipschitz_std: float | None = None,
        lipschitz_decoder: float | None = None,
        bjorck_iterations: int = 3,
        eval_bjorck_iterations: int = 50,
        group_size: int = 2,
        beta: float | None = None,
        likelihood: str | None = None,
        obs_variance: float | None = None,
        fixed_std: float | None = None,
        std_bound_radius: float | None = None,
    ) -> None:
        if fixed_std is not None and not 0 < fixed_std < 1:
            raise ValueError(f"fixed_std must lie in (0, 1), got {fixed_std}.")
        if std_bound_radius is not None and not std_bound_radius > 0:
            raise ValueError(f"std_bound_radius must be positive, got {std_bound_radius}.")
        self.fixed_std = None if fixed_std is None else float(fixed_std)
        self.std_bound_radius = None if std_bound_radius is None else float(std_bound_radius)
        self.lipschitz_mean = float(lipschitz)
        self.lipschitz_std = float(lipschitz if lipschitz_std is None else lipschitz_std)
        self.lipschitz_decoder = float(lipschitz if lipschitz_decoder is None else lipschitz_decoder)
        if int(bjorck_iterations) < 1 or int(eval_bjorck_iterations) < 1:
            raise ValueError("bjorck_iterations and eval_bjorck_iterations must be ≥ 1 (0 leaves W unconstrained).")
        self._mlp_args = {"group_size": int(group_size), "iterations": int(bjorck_iterations),
                          "eval_iterations": int(eval_bjorck_iterations)}
        super().__init__(image_shape, latent_dim, beta=beta, likelihood=likelihood, obs_variance=obs_variance)

    def _build_networks(self) -> None:
        pixels, hidden = math.prod(self.image_shape), [FC_WIDTH] * FC_DEPTH
        encoder_widths = [pixels, *hidden, self.latent_dim]
        self.mean_net = LipschitzMLP(encoder_widths, self.lipschitz_mean, **self._mlp_args)
        self.std_net = LipschitzMLP(encoder_widths, self.lipschitz_std, **self._mlp_args)
        self.decoder_net = LipschitzMLP([self.latent_dim, *hidden, pixels], self.lipschitz_decoder, **self._mlp_args)

    def export(self) -> ExportedLipschitzVAE:
        """A plain-MLP copy with the baked (``eval_bjorck_iterations``) orthonormal weights, in eval mode.

        Its outputs equal this model's in eval mode; it is for evaluation (training it would drop the
        Lipschitz constraint). Checkpoint the ``LipschitzVAE`` itself: in eval mode it already runs on
        cached baked weights.
        """
        return ExportedLipschitzVAE(self).eval()


class ExportedLipschitzVAE(_LipschitzVAEBase):
    """The baked, unregistered plain-MLP form of a :class:`LipschitzVAE` (``nn.Linear`` + GroupSort).

    Its ``loss`` is the source's ELBO, for evaluation: training this copy would drop the constraint.
    """

    def __init__(self, source: LipschitzVAE) -> None:
        AutoEncoder.__init__(self, source.image_shape, source.latent_dim)
        self.beta, self.likelihood, self.obs_variance = source.beta, source.likelihood, source.obs_variance
        check_likelihood(self.likelihood, self.obs_variance)
        self.lipschitz_mean, self.lipschitz_std = source.lipschitz_mean, source.lipschitz_std
        self.lipschitz_decoder = source.lipschitz_decoder
        self.fixed_std, self.std_bound_radius = source.fixed_std, source.std_bound_radius
        self.mean_net: nn.Module = source.mean_net.export()
        self.std_net: nn.Module = source.std_net.export()
        self.decoder_net: nn.Module = source.decoder_net.export()
        self.registry_name = f"{source.registry_name} (exported)"
        self.to(source.device)


__all__ = ["ExportedLipschitzVAE", "LipschitzVAE", "certified_radius"]
