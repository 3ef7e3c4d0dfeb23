"""Reconstruction error of a clean model: the test-set MSE reported beside every robustness number.

A model that ignores its input cannot be hurt by an attack; its reconstruction error is what gives it away
(Saseendran et al., NeurIPS 2022, report reconstruction quality beside robustness for the same reason).
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
