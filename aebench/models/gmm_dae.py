"""Deterministic autoencoders with a GMM prior: GMM-DAE and its adversarially trained variants.

- ``gmm_dae``: Saseendran et al., "Shape your Space: A Gaussian Mixture Regularization Approach to
  Deterministic Autoencoders", NeurIPS 2021 — reconstruction + KS + covariance losses.
- ``augmented_gmm_dae`` and ``robust_gmm_dae``: Saseendran et al., "Trading off Image Quality for
  Robustness is not Necessary with Regularized Deterministic Autoencoders", NeurIPS 2022 — FGSM
  adversarial codes regularised with the clean ones, independently (eq. 7–8) or coupled (eq. 9–11).

The three differ only in their adversarial terms, so the ablation of Table 2 shares every other
hyper-parameter. Losses follow the authors' code (official-code-spec.md §4–5).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aebench.model import MODELS, AutoEncoder
from aebench.nn import dae_losses as L
from aebench.nn.fgsm import fgsm_latent
from aebench.nn.gmm_prior import GMMPrior
from aebench.nn.networks import build_decoder, build_encoder_trunk

KSForm = Literal["pooled", "split"]


class GMMDAE(AutoEncoder):
    """GMM-regularised deterministic autoencoder (NeurIPS 2021), optionally adversarially trained.

    Args:
        image_shape: (C, H, W).
        latent_dim: D.
        num_components: K, the number of GMM modes (≤ D).
        prior_scale: s, the modes are s·e_k.
        prior_std: σ of each mode.
        lambda_rec: Weight of the reconstruction MSE (fixed, not estimated).
        latent_noise: Std of the Gaussian noise added to z before decoding in training.
        batch_size: Training batch size N, used to estimate the regulariser weights.
        adversarial: Whether to craft FGSM inputs and regularise their codes (default: the variant's).
        coupling: α, the cross-covariance coupling of clean and adversarial codes (eq. 10).
        pair_term: Whether to add the two-point KS term coupling the two code sets (eq. 9).
        ks_form: "pooled" (the code: KS of the 2N pooled sample) or "split" (eq. 7: ½ + ½).
        fgsm_epsilon: L∞ radius of the FGSM perturbation.
        fgsm_step: FGSM step size.
        weight_seed: Seed for the prior draws that estimate the loss weights.
    """

    description = "GMM-regularised deterministic autoencoder (KS + covariance losses)"
    paper = "Saseendran et al., Shape your Space, NeurIPS 2021"
    # What distinguishes the three registered variants; every other argument is shared.
    variant_defaults: ClassVar[dict[str, Any]] = {"adversarial": False, "coupling": 0.0, "pair_term": False}

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        num_components: int = 10,
        prior_scale: float = 10.0,
        prior_std: float = 1.0,
        lambda_rec: float = 500.0,
        latent_noise: float = 0.1,
        batch_size: int = 100,
        adversarial: bool | None = None,
        coupling: float | None = None,
        pair_term: bool | None = None,
        ks_form: KSForm = "pooled",
        fgsm_epsilon: float = 0.3,
        fgsm_step: float = 0.375,
        weight_seed: int = 0,
    ) -> None:
        super().__init__(image_shape, latent_dim)
        defaults = self.variant_defaults
        adversarial = defaults["adversarial"] if adversarial is None else adversarial
        coupling = defaults["coupling"] if coupling is None else coupling
        pair_term = defaults["pair_term"] if pair_term is None else pair_term
        if ks_form not in ("pooled", "split"):
            raise ValueError(f"ks_form must be 'pooled' or 'split', got {ks_form!r}.")
        if not 0.0 <= coupling <= 1.0:
            raise ValueError(f"coupling α must lie in [0, 1], got {coupling}.")
        if latent_noise < 0 or lambda_rec <= 0:
            raise ValueError(f"need latent_noise ≥ 0 and lambda_rec > 0, got {latent_noise}, {lambda_rec}.")
        trunk, features = build_encoder_trunk(self.image_shape)
        self.encoder = nn.Sequential(trunk, nn.Linear(features, self.latent_dim))
        self.decoder = build_decoder(self.image_shape, self.latent_dim)
        self.prior = GMMPrior(self.latent_dim, num_components, prior_scale, prior_std)
        self.lambda_rec, self.latent_noise = float(lambda_rec), float(latent_noise)
        self.adversarial, self.coupling, self.pair_term = bool(adversarial), float(coupling), bool(pair_term)
        self.ks_form: KSForm = ks_form
        self.fgsm_epsilon, self.fgsm_step = float(fgsm_epsilon), float(fgsm_step)
        self._estimate_weights(int(batch_size), int(weight_seed))

    def _estimate_weights(self, batch_size: int, seed: int) -> None:
        """λ_KS, λ_CV (and λ_pair) = 1 / their mean over prior samples (spec §4.7), stored as buffers."""
        prior = self.prior
        if self.adversarial:
            ks = L.pooled_ks_loss if self.ks_form == "pooled" else L.split_ks_loss
            weights = {
                "ks": L.estimate_loss_weight(lambda a, b: ks(a, b, prior), prior, batch_size, seed=seed),
                # λ_CV uses the same coupling as training, against independent prior batches (DESIGN.md).
                "cv": L.estimate_loss_weight(
                    lambda a, b: L.coupled_covariance_loss(a, b, prior, self.coupling), prior, batch_size, seed=seed
                ),
            }
            if self.pair_term:
                weights["pair"] = L.estimate_loss_weight(
                    lambda a, b: L.two_point_ks_loss(a, b, prior), prior, batch_size, seed=seed
                )
        else:
            weights = {
                "ks": L.estimate_loss_weight(lambda a, _: L.ks_loss(a, prior), prior, batch_size, seed=seed),
                "cv": L.estimate_loss_weight(lambda a, _: L.covariance_loss(a, prior), prior, batch_size, seed=seed),
            }
        for name, value in weights.items():
            self.register_buffer(f"weight_{name}", torch.tensor(value))

    def encode(self, x: Tensor) -> Tensor:
        """z = g(x), deterministic (no latent noise outside ``loss``)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """f(z) in [0, 1]."""
        return self.decoder(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draws from the fixed GMM prior (no post-hoc density estimation: the point of GMM-DAE)."""
        return self.prior.sample(n, generator)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """λ_REC·MSE(f(z + σε), x) + the weighted distribution-matching terms (spec §4.8)."""
        z = self.encode(x)
        noisy_z = z + self.latent_noise * torch.randn_like(z) if self.latent_noise else z
        terms = {"rec": F.mse_loss(self.decode(noisy_z), x)}
        if self.adversarial:
            z_adv = self.encode(fgsm_latent(self.encode, x, self.fgsm_epsilon, self.fgsm_step))
            ks = L.pooled_ks_loss if self.ks_form == "pooled" else L.split_ks_loss
            terms["ks"] = ks(z, z_adv, self.prior)
            terms["cv"] = L.coupled_covariance_loss(z, z_adv, self.prior, self.coupling)
            if self.pair_term:
                terms["pair"] = L.two_point_ks_loss(z, z_adv, self.prior)
        else:
            terms["ks"] = L.ks_loss(z, self.prior)
            terms["cv"] = L.covariance_loss(z, self.prior)
        total = self.lambda_rec * terms["rec"]
        for name, value in terms.items():
            if name != "rec":
                total = total + getattr(self, f"weight_{name}") * value
        return {"loss": total, **terms}


MODELS.add("gmm_dae", GMMDAE)


@MODELS.register("augmented_gmm_dae")
class AugmentedGMMDAE(GMMDAE):
    """FGSM codes regularised to the prior beside the clean ones, uncoupled: α = 0, no pair term (eq. 7–8)."""

    description = "GMM-DAE + FGSM codes regularised independently (ablation, α = 0)"
    paper = "Saseendran et al., Trading off Image Quality for Robustness..., NeurIPS 2022 (eq. 7-8)"
    variant_defaults: ClassVar[dict[str, Any]] = {"adversarial": True, "coupling": 0.0, "pair_term": False}


@MODELS.register("robust_gmm_dae")
class RobustGMMDAE(GMMDAE):
    """The coupled robust DAE: pooled KS + two-point KS + coupled covariance with α (eq. 9–11)."""

    description = "Robust GMM-DAE: FGSM codes coupled to clean codes (two-point KS, coupled covariance)"
    paper = "Saseendran et al., Trading off Image Quality for Robustness..., NeurIPS 2022"
    variant_defaults: ClassVar[dict[str, Any]] = {"adversarial": True, "coupling": 0.5, "pair_term": True}
