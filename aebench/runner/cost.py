"""What a cell costs, roughly, and how to share cells among N shards so that they finish together.

Training is epochs × training-set size × the model's step cost relative to a VAE step × one measured rate; an
attack is N × T pairs × the seconds per pair its optimizer and objective took in the committed results, growing
with the budget for optimizers that run to convergence. The rates are for one torch thread on a 2-core CPU
(``benchmarks/cost_model.py`` compares them with a folder's recorded wall times); another machine scales them all
alike, which keeps the ranking. Shards are balanced by the longest-processing-time-first rule (Graham, "Bounds on
Multiprocessing Timing Anomalies", 1969): cells in decreasing cost, each to the shard with the least work so far,
which is within 4/3 of the best possible makespan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aebench.data import split_size
from aebench.runner.plan import CellPlan, Measurement

STEP_COST: dict[str, float] = {
    "vae": 1.00, "gmm_dae": 0.95, "beta_vae": 1.01, "avae": 1.15, "beta_tcvae": 1.22, "augmented_gmm_dae": 1.60,
    "robust_gmm_dae": 1.76, "smooth_encoder": 2.53, "lipschitz_vae": 10.81,
}
"""Training-step cost relative to a VAE step (``benchmarks/train_step.py``, FC trunk, batch 100, 2 threads);
a model not listed costs 1. Only training is scaled by it: an attack differentiates the evaluation networks, which
cost about the same for every model (the smooth encoder's inner attack and the Lipschitz VAE's Bjorck iterations
are training-time work)."""

SECONDS_PER_IMAGE_STEP = 150e-6
"""Seconds per training image of a VAE-cost model in a whole epoch (batches, loss, backward, Adam) with one torch
thread: 100 epochs of gmm_dae on Fashion-MNIST's 60,000 images took about 15 min on a 2-core CPU (2026-12-03);
``benchmarks/cost_model.py`` measures it."""

SECONDS_PER_PAIR: dict[tuple[str, str], float] = {
    ("lbfgs", "latent"): 0.014, ("lbfgs", "max_damage"): 0.043,
    ("ensemble", "latent"): 0.015, ("ensemble", "max_damage"): 0.057,
    ("pgd", "latent"): 0.0105, ("pgd", "max_damage"): 0.0145,
    ("pgd", "latent_msssim"): 0.26, ("pgd", "max_damage_msssim"): 0.26,
    ("apgd", "latent"): 0.0055, ("apgd", "max_damage"): 0.0075,
}
"""Seconds per attacked (image, trial) pair at budget 1 with the optimizer's default options, one torch thread,
batches of 1,000: medians of the wall times that ``results/table1_fashion_mnist``, ``results/table2_full`` and
``results/audit`` record (``benchmarks/cost_model.py`` prints them beside these values). ``apgd`` is scaled from
``pgd`` by its gradient count (100 against 200). The perceptual objectives differentiate MS-SSIM's five-scale
pyramid and cost about 25 times as much per gradient."""

DEFAULT_SECONDS_PER_PAIR = 0.02
"""An (optimizer, attack) pair not in :data:`SECONDS_PER_PAIR`, e.g. a registered third-party attack."""

NOISE_SECONDS_PER_PAIR = 0.0012
"""The noise baseline: one random draw and the metrics, whatever the attack."""

BUDGET_EXPONENT: dict[str, float] = {"lbfgs": 0.8, "ensemble": 0.8}
"""Optimizers that run to convergence take longer at larger budgets: time grows about as budget ** exponent
(L-BFGS-B over the committed tables: 2.4 times as long at budget 3 as at 1, 3.6 times at 5). Fixed-step optimizers
(``pgd``, ``apgd``) take as long at any budget."""

OTHER_MEASUREMENT_SECONDS = 15.0
"""Reconstruction, fidelity and downstream once their shared pieces are cached (a fidelity classifier trained for
the first model of a data set takes minutes once)."""


def training_seconds(cell: CellPlan, data_root: str | None = None) -> float:
    """Estimated seconds to train the cell's model with one torch thread (0 for a loaded checkpoint)."""
    if cell.source.training is None:
        return 0.0
    config = cell.source.training
    try:
        images = split_size(config.dataset, "train", data_root)
    except Exception:  # an estimate must never stop a plan: files are checked elsewhere
        images = 60_000
    return config.training.epochs * images * STEP_COST.get(cell.source.name, 1.0) * SECONDS_PER_IMAGE_STEP


def measurement_seconds(m: Measurement) -> float:
    """Estimated seconds of one measurement with one torch thread, its model at hand."""
    if m.kind != "attack":
        return OTHER_MEASUREMENT_SECONDS
    pairs = m.settings["n_images"] * m.settings["n_trials"]
    optimizer, attack = m.settings["optimizer"], m.settings["attack"]
    if optimizer == "noise":
        return pairs * NOISE_SECONDS_PER_PAIR
    per_pair = SECONDS_PER_PAIR.get((optimizer, attack), DEFAULT_SECONDS_PER_PAIR)
    growth = max(float(m.settings["budget"]), 1.0) ** BUDGET_EXPONENT.get(optimizer, 0.0)
    return pairs * per_pair * growth


def cell_cost(cell: CellPlan, data_root: str | None = None) -> float:
    """Estimated seconds of a cell with one torch thread (training included, even when a cache might hold the model)."""
    return training_seconds(cell, data_root) + sum(measurement_seconds(m) for m in cell.measurements)


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
