"""Deterministic autoencoders with a GMM prior: GMM-DAE and its adversarially trained variants.

- ``gmm_dae``: Saseendran et al., "Shape your Space: A Gaussian Mixture Regularization Approach to
  Deterministic Autoencoders", NeurIPS 2021 — reconstruction + KS + covariance losses.
- ``augmented_gmm_dae`` and ``robust_gmm_dae``: Saseendran et al., "Trading off Image Quality for
  Robustness is not Necessary with Regularized Deterministic Autoencoders", NeurIPS 2022 — FGSM
  adversarial codes regularised with the clean ones, independently (eq. 7–8) or coupled (eq. 9–11).

The three differ only in their adversarial terms, so the ablation of Table 2 shares every other
hyper-parameter. Losses follow the authors' code (official-code-spec.md §4–5).

The paper leaves three choices open, each a constructor argument usable as a suite override:

- ``cross_covariance``: ``"zero"`` keeps the cross blocks of the 2D×2D covariance in the loss with target α·Σ
  (eq. 8 as printed when α = 0; eq. 10 otherwise); ``"free"`` leaves them out, the reading of the prose ("regularize
  ... independently, ignoring cross-covariance") and of Figure 1.
- ``ks_form``: ``"pooled"`` (the authors' code: KS of the 2N pooled sample) or ``"split"`` (eq. 7: ½ + ½).
- ``lambda_cv_coupling``: λ_CV is 1 / the mean covariance loss over independent prior batches, estimated with the
  model's α (``"alpha"``, DESIGN.md) or with α = 0 (``"zero"``); for α = 0.5 the two give 0.436 and 1.067.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aebench.models.base import MODELS, AutoEncoder
from aebench.nn import dae_losses
from aebench.nn.fgsm import fgsm_latent
from aebench.nn.gmm_prior import GMMPrior
from aebench.nn.networks import build_decoder, build_encoder_trunk

KSForm = Literal["pooled", "split"]
CrossCovariance = Literal["zero", "free"]
WeightCoupling = Literal["alpha", "zero"]


@MODELS.register("gmm_dae")
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
        cross_covariance: "zero" (cross blocks in the loss, target α·Σ) or "free" (cross blocks left out).
        lambda_cv_coupling: Estimate λ_CV with the model's α ("alpha") or with α = 0 ("zero").
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
        cross_covariance: CrossCovariance = "zero",
        lambda_cv_coupling: WeightCoupling = "alpha",
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
        if cross_covariance not in ("zero", "free"):
            raise ValueError(f"cross_covariance must be 'zero' or 'free', got {cross_covariance!r}.")
        if lambda_cv_coupling not in ("alpha", "zero"):
            raise ValueError(f"lambda_cv_coupling must be 'alpha' or 'zero', got {lambda_cv_coupling!r}.")
        if cross_covariance == "free" and coupling:
            raise ValueError(f"cross_covariance='free' leaves the cross blocks out of the loss, so the coupling "
                             f"α={coupling} would have no effect; use cross_covariance='zero' or coupling=0.")
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
        self.cross_covariance: CrossCovariance = cross_covariance
        self.lambda_cv_coupling: WeightCoupling = lambda_cv_coupling
        self.fgsm_epsilon, self.fgsm_step = float(fgsm_epsilon), float(fgsm_step)
        self._estimate_weights(int(batch_size), int(weight_seed))

    def _ks(self) -> Any:
        return dae_losses.pooled_ks_loss if self.ks_form == "pooled" else dae_losses.split_ks_loss

    def _adversarial_covariance(self, z: Tensor, z_adv: Tensor, coupling: float) -> Tensor:
        if self.cross_covariance == "free":
            return dae_losses.block_covariance_loss(z, z_adv, self.prior)
        return dae_losses.coupled_covariance_loss(z, z_adv, self.prior, coupling)

    def _estimate_weights(self, batch_size: int, seed: int) -> None:
        """λ_KS, λ_CV (and λ_pair) = 1 / their mean over prior samples (spec §4.7), stored as buffers."""
        prior, estimate = self.prior, dae_losses.estimate_loss_weight
        if self.adversarial:
            ks = self._ks()
            # λ_CV against independent prior batches, with the training α or with α = 0 (see the module docstring).
            alpha = self.coupling if self.lambda_cv_coupling == "alpha" else 0.0
            weights = {
                "ks": estimate(lambda a, b: ks(a, b, prior), prior, batch_size, seed=seed),
                "cv": estimate(lambda a, b: self._adversarial_covariance(a, b, alpha), prior, batch_size, seed=seed),
            }
            if self.pair_term:
                weights["pair"] = estimate(lambda a, b: dae_losses.two_point_ks_loss(a, b, prior), prior, batch_size,
                                           seed=seed)
        else:
            weights = {
                "ks": estimate(lambda a, _: dae_losses.ks_loss(a, prior), prior, batch_size, seed=seed),
                "cv": estimate(lambda a, _: dae_losses.covariance_loss(a, prior), prior, batch_size, seed=seed),
            }
        for name, value in weights.items():
            self.register_buffer(f"weight_{name}", torch.tensor(value))

    def encode(self, x: Tensor) -> Tensor:
        """Z = g(x), deterministic (no latent noise outside ``loss``)."""
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
            terms["ks"] = self._ks()(z, z_adv, self.prior)
            terms["cv"] = self._adversarial_covariance(z, z_adv, self.coupling)
            if self.pair_term:
                terms["pair"] = dae_losses.two_point_ks_loss(z, z_adv, self.prior)
        else:
            terms["ks"] = dae_losses.ks_loss(z, self.prior)
            terms["cv"] = dae_losses.covariance_loss(z, self.prior)
        total = self.lambda_rec * terms["rec"]
        for name, value in terms.items():
            if name != "rec":
                total = total + getattr(self, f"weight_{name}") * value
        return {"loss": total, **terms}


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
