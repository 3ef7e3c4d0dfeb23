"""Attacking many (image, trial) pairs in chunks that fit in memory, with one generator for all of them.

The attacks of Saseendran et al. (NeurIPS 2022, eq. 12/13) run per image; :func:`attack_in_chunks` stacks a cell's
pairs and hands them to :func:`~aebench.attacks.run_attack` ``chunk`` rows at a time, so every row still gets its
own random start and the result depends only on the generator's seed and the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from aebench.attacks.api import run_attack
from aebench.attacks.objectives import ATTACKS
from aebench.models.base import AutoEncoder


def attack_in_chunks(model: AutoEncoder, x: Tensor, target: Tensor | None, *, attack: str, optimizer: str,
                     budget: float, options: dict[str, object], generator: torch.Generator, chunk: int,
                     device: torch.device, progress: Callable[[float], None] | None = None) -> tuple[Tensor, Tensor]:
    """Attack every row of ``x`` and return (x_adv, objective) on the CPU.

    Args:
        model: The autoencoder (attacked in eval mode).
        x: Clean images (B, C, H, W) on any device.
        target: Target images of the same shape for attacks that need one (ignored otherwise).
        attack: A registered attack objective.
        optimizer: A registered optimizer.
        budget: λ.
        options: Optimizer options.
        generator: CPU generator for the random starts of all chunks, in order.
        chunk: Rows per call.
        device: Where the attack runs.
        progress: Called with the fraction of the work done.
    """
    needs_target = ATTACKS[attack].needs_target
    n_chunks = max(1, -(-x.shape[0] // chunk))
    adversarial, objectives = [], []
    for index, start in enumerate(range(0, x.shape[0], chunk)):
        def report(done: int, total: int, index: int = index) -> None:
            if progress is not None:
                progress((index + done / max(total, 1)) / n_chunks)

        result = run_attack(model, x[start : start + chunk].to(device), attack=attack, budget=budget,
                            optimizer=optimizer, generator=generator, progress=report,
                            target=target[start : start + chunk].to(device) if needs_target else None, **options)
        adversarial.append(result.x_adv.detach().cpu())
        objectives.append(result.objective.detach().cpu())
    return torch.cat(adversarial), torch.cat(objectives)
