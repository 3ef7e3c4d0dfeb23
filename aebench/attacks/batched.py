"""Attacking many (image, trial) pairs in chunks that fit in memory, with one generator for all of them.

The attacks of Saseendran et al. (NeurIPS 2022, eq. 12/13) run per image; :func:`attack_in_chunks` stacks a cell's
pairs and hands them to :func:`~aebench.attacks.run_attack` ``chunk`` rows at a time, so every row still gets its
own random start and the result depends only on the generator's seed and the chunk size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from aebench.attacks.api import run_attack
from aebench.attacks.objectives import ATTACKS
from aebench.models.base import AutoEncoder


@dataclass
class BatchedAttack:
    """The result of :func:`attack_in_chunks`, on the CPU.

    Attributes:
        x_adv: Adversarial images (B, C, H, W).
        objective: (B,) final objective.
        capped: (B,) rows the optimizer's iteration cap cut short, or None when it has no such cap.
        members: An ensemble's per-member objective (B,), by member.
    """

    x_adv: Tensor
    objective: Tensor
    capped: Tensor | None = None
    members: dict[str, Tensor] = field(default_factory=dict)


def attack_in_chunks(model: AutoEncoder, x: Tensor, target: Tensor | None, *, attack: str, optimizer: str,
                     budget: float, options: dict[str, object], generator: torch.Generator, chunk: int,
                     device: torch.device, progress: Callable[[float], None] | None = None) -> BatchedAttack:
    """Attack every row of ``x`` in chunks of ``chunk`` rows.

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
    adversarial, objectives, capped, members = [], [], [], {}
    for index, start in enumerate(range(0, x.shape[0], chunk)):
        def report(done: int, total: int, index: int = index) -> None:
            if progress is not None:
                progress((index + done / max(total, 1)) / n_chunks)

        result = run_attack(model, x[start : start + chunk].to(device), attack=attack, budget=budget,
                            optimizer=optimizer, generator=generator, progress=report,
                            target=target[start : start + chunk].to(device) if needs_target else None, **options)
        adversarial.append(result.x_adv.detach().cpu())
        objectives.append(result.objective.detach().cpu())
        if result.capped is not None:
            capped.append(result.capped.cpu())
        for name, values in result.members.items():
            members.setdefault(name, []).append(values.detach().cpu())
    return BatchedAttack(torch.cat(adversarial), torch.cat(objectives), torch.cat(capped) if capped else None,
                         {name: torch.cat(parts) for name, parts in members.items()})
