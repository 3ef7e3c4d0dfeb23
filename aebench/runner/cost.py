"""What a cell costs, roughly, and how to share cells among N shards so that they finish together.

The estimate counts image-steps: training is epochs × training-set size × the model's step cost relative to a VAE
step on the same trunk; every attack is N × T images × the gradient evaluations its optimizer makes per image.
Seconds come from one reference rate. The numbers only need to rank cells: they balance shards by the
longest-processing-time-first rule (Graham, "Bounds on Multiprocessing Timing Anomalies", 1969): cells in
decreasing cost, each to the shard with the least work so far, which is within 4/3 of the best possible makespan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aebench.data import split_size
from aebench.runner.plan import CellPlan

STEP_COST: dict[str, float] = {
    "vae": 1.00, "gmm_dae": 0.95, "beta_vae": 1.01, "avae": 1.15, "beta_tcvae": 1.22, "augmented_gmm_dae": 1.60,
    "robust_gmm_dae": 1.76, "smooth_encoder": 2.53, "lipschitz_vae": 10.81,
}
"""Training-step cost relative to a VAE step (``benchmarks/train_step.py``, FC trunk, batch 100, 2 threads);
a model not listed costs 1."""

GRADIENTS_PER_IMAGE: dict[str, float] = {"lbfgs": 120.0, "pgd": 200.0, "apgd": 100.0, "ensemble": 620.0,
                                         "noise": 1.0}
"""Gradient evaluations per attacked image with each optimizer's defaults (L-BFGS-B counted with its line search)."""

SECONDS_PER_IMAGE_STEP = 47e-6
"""A VAE training step on the FC trunk takes about 4.7 ms for 100 images on 2 CPU cores (``benchmarks``)."""

ATTACK_STEP_FRACTION = 0.5
"""An attack's gradient (input gradient only, no optimizer update) costs about half a training step per image."""


def cell_cost(cell: CellPlan, data_root: str | None = None) -> float:
    """Estimated seconds of a cell on 2 CPU cores (training included, even when a cache might hold the model)."""
    relative = STEP_COST.get(cell.source.name, 1.0)
    seconds = 0.0
    if cell.source.training is not None:
        config = cell.source.training
        try:
            images = split_size(config.dataset, "train", data_root)
        except Exception:  # an estimate must never stop a plan: files are checked elsewhere
            images = 60_000
        seconds += config.training.epochs * images * relative * SECONDS_PER_IMAGE_STEP
    for m in cell.measurements:
        if m.kind == "attack":
            pairs = m.settings["n_images"] * m.settings["n_trials"]
            steps = GRADIENTS_PER_IMAGE.get(m.settings["optimizer"], 100.0)
            seconds += pairs * steps * relative * ATTACK_STEP_FRACTION * SECONDS_PER_IMAGE_STEP
        else:
            seconds += 5.0  # reconstruction, fidelity and downstream: seconds each once cached
    return seconds


@dataclass(frozen=True)
class ShardPlan:
    """Which cells each shard runs, and its estimated seconds."""

    cells: tuple[tuple[CellPlan, ...], ...]
    seconds: tuple[float, ...]


def assign_shards(cells: Sequence[CellPlan], count: int, data_root: str | None = None) -> ShardPlan:
    """Longest processing time first: the most expensive cell to the least loaded shard, ties to the lowest index.

    Deterministic (ties broken by the plan's order), so every shard of a job array computes the same assignment.
    """
    costs = [cell_cost(c, data_root) for c in cells]
    order = sorted(range(len(cells)), key=lambda i: (-costs[i], i))
    shards: list[list[int]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for i in order:
        target = min(range(count), key=lambda s: (loads[s], s))
        shards[target].append(i)
        loads[target] += costs[i]
    return ShardPlan(tuple(tuple(cells[i] for i in sorted(s)) for s in shards), tuple(loads))
