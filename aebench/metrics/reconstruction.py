"""What a clean model does with its input: the test-set reconstruction error and the number of active latent units.

A model that ignores its input cannot be hurt by an attack; these two give it away, so they stand beside every
robustness number. Active units follow Burda, Grosse and Salakhutdinov, "Importance Weighted Autoencoders" (ICLR
2016, https://arxiv.org/abs/1509.00519): a latent dimension u is active when Cov_x(E[z_u | x]) > 0.01, here the
variance of the deterministic code g(x)_u over the test set.
"""

from __future__ import annotations

import torch

from aebench.data import ImageDataset
from aebench.utils import eval_mode


@torch.no_grad()
def reconstruction_mse(model: torch.nn.Module, dataset: ImageDataset, device: torch.device | str,
                       batch_size: int = 500) -> float:
    """Mean squared error of f(g(x)) over every pixel of a split, in eval mode (no latent noise)."""
    total, count = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(dataset), batch_size):
            x = dataset.batch(slice(start, start + batch_size)).to(device)
            total += torch.nn.functional.mse_loss(model.reconstruct(x), x, reduction="sum").item()
            count += x.numel()
    return total / count


ACTIVE_UNIT_THRESHOLD = 0.01
"""Burda et al.'s threshold on the variance of a code dimension over the data."""


@torch.no_grad()
def active_units(model: torch.nn.Module, dataset: ImageDataset, device: torch.device | str,
                 threshold: float = ACTIVE_UNIT_THRESHOLD, batch_size: int = 500) -> int:
    """Number of code dimensions whose variance over ``dataset`` exceeds ``threshold`` (eval mode)."""
    with eval_mode(model):
        codes = torch.cat([model.encode(dataset.batch(slice(s, s + batch_size)).to(device)).double().cpu()
                           for s in range(0, len(dataset), batch_size)])
    return int((codes.var(dim=0) > threshold).sum())
