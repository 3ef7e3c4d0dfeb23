"""Distribution-matching losses of the GMM-DAE family, as the authors' code computes them.

Saseendran et al., "Trading off Image Quality for Robustness is not Necessary with Regularized
Deterministic Autoencoders" (NeurIPS 2022), eq. 4–10, and official-code-spec.md §4: a one-sample
Kolmogorov–Smirnov-style loss on the marginal CDFs, a covariance loss, their adversarial extensions
(pooled KS, two-point KS, coupled 2D×2D covariance) and loss weights estimated from prior samples.
All losses take latent batches of shape (N, D).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from aebench.nn.gmm_prior import GMMPrior


def ks_loss(z: Tensor, prior: GMMPrior) -> Tensor:
    """Mean squared gap between the prior's marginal CDFs and the ECDF at the order statistics (eq. 4).

    Each column is sorted; the i-th order statistic is compared with the ECDF value i/N.
    """
    n = z.shape[0]
    order_stats, _ = torch.sort(z, dim=0)
    ecdf = torch.arange(1, n + 1, device=z.device, dtype=z.dtype).div(n).unsqueeze(1)
    return (prior.marginal_cdf(order_stats) - ecdf).pow(2).mean()


def pooled_ks_loss(z: Tensor, z_adv: Tensor, prior: GMMPrior) -> Tensor:
    """KS loss of the pooled 2N sample: what the authors' code uses for eq. 7 (spec §4.3)."""
    # Pooling asks only that z and z_adv *together* follow the prior: half the codes may sit off it if the other
    # half compensates, which the paper's ½ + ½ form (split_ks_loss) does not allow. Its expectation at the prior
    # is about 1/(6·2N), so its weight is about twice the clean KS term's.
    return ks_loss(torch.cat([z, z_adv], dim=0), prior)


def split_ks_loss(z: Tensor, z_adv: Tensor, prior: GMMPrior) -> Tensor:
    """½ L_KS(z) + ½ L_KS(z_adv): eq. 7 as the paper writes it."""
    return 0.5 * ks_loss(z, prior) + 0.5 * ks_loss(z_adv, prior)


def two_point_ks_loss(z: Tensor, z_adv: Tensor, prior: GMMPrior) -> Tensor:
    """MSE between prior-CDF-transformed matched order statistics of z and z_adv (spec §4.4).

    This is the authors' reading of eq. 9's second term; it ignores which z_adv belongs to which z.
    """
    # Matching the i-th smallest z with the i-th smallest z_adv compares the two marginal distributions, not the
    # pairs (x, x_adv): a permutation of z_adv costs nothing. The prior CDF maps both onto [0, 1], so a gap
    # between two far modes does not dominate the term the way a raw distance would.
    sorted_z, _ = torch.sort(z, dim=0)
    sorted_adv, _ = torch.sort(z_adv, dim=0)
    return (prior.marginal_cdf(sorted_z) - prior.marginal_cdf(sorted_adv)).pow(2).mean()


def empirical_covariance(z: Tensor) -> Tensor:
    """Biased (divide by N), batch-mean-centred covariance, as in the authors' code."""
    centred = z - z.mean(dim=0, keepdim=True)
    return centred.T @ centred / z.shape[0]


def covariance_loss(z: Tensor, prior: GMMPrior) -> Tensor:
    """Mean squared difference between the batch covariance and Σ_GMM (eq. 5)."""
    return (empirical_covariance(z) - prior.covariance()).pow(2).mean()


def coupled_covariance_target(prior: GMMPrior, coupling: float) -> Tensor:
    """The 2D×2D target [[Σ, αΣ], [αΣ, Σ]] of eq. 10 (α = 0 gives eq. 8)."""
    sigma = prior.covariance()
    return torch.cat([torch.cat([sigma, coupling * sigma], 1), torch.cat([coupling * sigma, sigma], 1)], 0)


def coupled_covariance_loss(z: Tensor, z_adv: Tensor, prior: GMMPrior, coupling: float) -> Tensor:
    """Covariance loss of the feature-concatenated pair [z, z_adv] against the coupled target (eq. 10)."""
    joint = torch.cat([z, z_adv], dim=1)
    return (empirical_covariance(joint) - coupled_covariance_target(prior, coupling)).pow(2).mean()


def block_covariance_loss(z: Tensor, z_adv: Tensor, prior: GMMPrior) -> Tensor:
    """Covariance loss of z and of z_adv, each against Σ_GMM, the cross blocks left out of the loss.

    The reading of the paper's prose for the augmented model ("regularize ... independently, ignoring
    cross-covariance"): the mean over the two diagonal D×D blocks of the joint loss, so the encoder is free to
    correlate its clean and adversarial codes in any way.
    """
    return 0.5 * (covariance_loss(z, prior) + covariance_loss(z_adv, prior))


def estimate_loss_weight(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    prior: GMMPrior,
    batch_size: int,
    num_draws: int = 100,
    seed: int = 0,
) -> float:
    """1 / E[loss] over pairs of independent prior batches, so each regulariser is ≈ 1 at the prior.

    The authors draw these once from unseeded samples (spec §4.7); a fixed ``seed`` makes the weights,
    and so whole training runs, reproducible.

    Args:
        loss_fn: Called as ``loss_fn(z, z_other)`` on two independent prior batches.
        prior: The prior to draw from.
        batch_size: N, the training batch size (the KS expectation is ≈ 1/(6N), so it matters).
        num_draws: How many batch pairs to average over.
        seed: Seed of the private generator used for the draws.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    cpu_prior = GMMPrior(prior.latent_dim, prior.num_components, prior.scale, prior.std)
    with torch.no_grad():
        values = [
            loss_fn(cpu_prior.sample(batch_size, generator), cpu_prior.sample(batch_size, generator))
            for _ in range(num_draws)
        ]
    mean = torch.stack(values).mean().item()
    if not mean > 0:
        raise ValueError(f"Cannot normalise a loss whose mean over prior samples is {mean}.")
    return 1.0 / mean
