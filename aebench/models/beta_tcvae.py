"""β-TCVAE: the ELBO with its KL split into index-code MI, total correlation and dimension-wise KL.

Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in Variational Autoencoders",
NeurIPS 2018 (https://arxiv.org/abs/1802.04942); official code ``rtqichen/beta-tcvae``.

Per example (baselines.md §A1), with z_i = μ_i + σ_i ⊙ ε and q̂ a minibatch estimate of the aggregate
posterior from the batch's B posteriors and the training-set size N:

    L_i = −log p(x_i|z_i) + α·[log q(z_i|x_i) − log q̂(z_i)]              (MI)
                          + β·[log q̂(z_i) − Σ_d log q̂(z_id)]             (TC)
                          + γ·[Σ_d log q̂(z_id) − log p(z_i)]             (dimension-wise KL)

Two estimators of q̂: minibatch weighted sampling (MWS, weights 1/(B·N)) and minibatch stratified
sampling (MSS). The MSS weight matrix here puts 1/N on the *diagonal* (the sample's own posterior);
the published code, pythae and disentangling-vae put it in column 0 (baselines.md §A1, "Bug").
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from aebench.models.base import MODELS
from aebench.models.vae import GaussianVAE
from aebench.nn.gaussian import gaussian_log_density, reparameterize

Estimator = Literal["mss", "mws"]
ESTIMATORS: tuple[str, ...] = ("mss", "mws")


def mss_log_weights(
    batch_size: int, dataset_size: int, device: torch.device | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Log W of minibatch stratified sampling, a (B, B) matrix whose rows sum to 1 in probability space.

    With M = B − 1: W[i, i] = 1/N (the sample's own posterior), W[i, (i+1) mod B] = (N − M)/(N·M)
    (the stratum standing for the rest of the data set) and every other entry 1/M.

    Raises:
        ValueError: If B < 2 or N < B (the stratified weight would not be positive).
    """
    if batch_size < 2:
        raise ValueError(f"The MSS estimator needs a batch of at least 2 images, got {batch_size}; use 'mws'.")
    if dataset_size < batch_size:
        raise ValueError(
            f"dataset_size ({dataset_size}) is smaller than the batch ({batch_size}); pass the true number of "
            "training images (the trainer does) or lower the batch size."
        )
    n, m = float(dataset_size), float(batch_size - 1)
    weights = torch.full((batch_size, batch_size), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch_size)
    weights[rows, (rows + 1) % batch_size] = (n - m) / (n * m)
    weights[rows, rows] = 1.0 / n  # after the stratum entry, so that B = 2 keeps the diagonal at 1/N
    return weights.log().to(device=device, dtype=dtype)


def tc_decomposition(
    z: Tensor, mu: Tensor, logvar: Tensor, dataset_size: int, estimator: str = "mss"
) -> dict[str, Tensor]:
    """Per-sample MI, TC and dimension-wise KL of the β-TCVAE objective, each (B,).

    Args:
        z: One posterior sample per input, (B, D).
        mu: Posterior means of the batch, (B, D).
        logvar: Posterior log-variances of the batch, (B, D).
        dataset_size: N, the number of training images.
        estimator: "mss" (stratified) or "mws" (weighted).

    Returns:
        ``mi``, ``tc``, ``dwkl``, plus ``log_qz_x``, ``log_qz``, ``log_prod_qzi`` and ``log_pz``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
    batch = z.shape[0]
    # log_q[i, j, d] = log N(z_id; μ_jd, σ²_jd): sample i under the posterior of input j.
    log_q = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
    if estimator == "mws":
        log_w = torch.full((batch, batch), -math.log(batch * dataset_size), dtype=z.dtype, device=z.device)
    else:
        log_w = mss_log_weights(batch, dataset_size, z.device, z.dtype)
    log_qz = torch.logsumexp(log_w + log_q.sum(dim=2), dim=1)
    log_prod_qzi = torch.logsumexp(log_w.unsqueeze(2) + log_q, dim=1).sum(dim=1)
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(dim=1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
    return {
        "mi": log_qz_x - log_qz,
        "tc": log_qz - log_prod_qzi,
        "dwkl": log_prod_qzi - log_pz,
        "log_qz_x": log_qz_x,
        "log_qz": log_qz,
        "log_prod_qzi": log_prod_qzi,
        "log_pz": log_pz,
    }


@MODELS.register("beta_tcvae")
class BetaTCVAE(GaussianVAE):
    """β-TCVAE with weights α (MI), β (TC), γ (dimension-wise KL) and the MSS or MWS estimator.

    Args:
        image_shape: (C, H, W).
        latent_dim: D.
        dataset_size: N, the true number of training images (the trainer passes it).
        alpha: Weight of the index-code mutual information.
        beta: Weight of the total correlation.
        gamma: Weight of the dimension-wise KL.
        estimator: "mss" (corrected stratified sampling) or "mws" (weighted sampling).
        likelihood: "gaussian", "bernoulli" or "continuous_bernoulli".
        obs_variance: v of the Gaussian likelihood.
    """

    description = "β-TCVAE (MI + β·TC + dimension-wise KL, MSS/MWS estimators)"
    paper = "Chen et al., Isolating Sources of Disentanglement in VAEs, NeurIPS 2018"
    # β = 6: the commonly used value (disentangling-vae's batchTC_B; baselines.md §A1). α = γ = 1 as in
    # the official code without annealing; Bernoulli likelihood as in the official code.
    variant_defaults: ClassVar[dict[str, Any]] = {**GaussianVAE.variant_defaults, "beta": 6.0}

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int = 10,
        dataset_size: int | None = None,
        alpha: float = 1.0,
        beta: float | None = None,
        gamma: float = 1.0,
        estimator: str = "mss",
        likelihood: str | None = None,
        obs_variance: float | None = None,
    ) -> None:
        super().__init__(image_shape, latent_dim, beta=beta, likelihood=likelihood, obs_variance=obs_variance)
        if dataset_size is None or int(dataset_size) < 1:
            raise ValueError(
                f"beta_tcvae needs dataset_size, the number of training images (got {dataset_size!r}): its "
                "aggregate-posterior estimator weights the batch by it. `aebench train` passes it; pass it "
                "yourself when building the model by hand."
            )
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}.")
        if alpha < 0 or gamma < 0:
            raise ValueError(f"alpha and gamma must be ≥ 0, got {alpha}, {gamma}.")
        self.dataset_size, self.estimator = int(dataset_size), estimator
        self.alpha, self.gamma = float(alpha), float(gamma)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Batch mean of −log p(x|z) + α·MI + β·TC + γ·dimension-wise KL."""
        mu, logvar = self.posterior(x)
        z = reparameterize(mu, logvar)
        rec = self.reconstruction_nll(self.decode(z), x).mean()
        parts = tc_decomposition(z, mu, logvar, self.dataset_size, self.estimator)
        mi, tc, dwkl = parts["mi"].mean(), parts["tc"].mean(), parts["dwkl"].mean()
        total = rec + self.alpha * mi + self.beta * tc + self.gamma * dwkl
        return {"loss": total, "rec": rec, "mi": mi, "tc": tc, "dwkl": dwkl}


__all__ = ["ESTIMATORS", "BetaTCVAE", "mss_log_weights", "tc_decomposition"]
