"""How much to trust a number: the attack audit's gap, order flags, and bootstrap intervals for the best values.

- **Attack gap.** The ensemble (:mod:`aebench.attacks.ensemble`) records each member's attack loss; the gap of the
  paper's attack (its ``lbfgs`` member) is its loss minus the worst case found, per image: 0 when the paper's
  attack found the worst case, large when a model only looks robust because the attack was weak on it.
- **Order flags.** Two models whose order under the paper's attack differs from their order under the worst case.
- **Bootstrap intervals.** For a value a table marks as best, the 95% interval of its difference to the runner-up,
  resampling the (trial, image) pairs both models were attacked on (the same images: the pairs are matched),
  2,000 resamples (Efron and Tibshirani, "An Introduction to the Bootstrap", 1993). An interval that contains 0
  says the bold is not a finding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aebench.report.tables import ATTACK_TITLES, COLLAPSE_COLUMNS, Column, Layout

PAPER_MEMBER = "lbfgs"
BOOTSTRAP_SAMPLES = 2000


def audit_layout(attack: str, reference: str = PAPER_MEMBER) -> Layout:
    """The audit table of one attack kind: the paper's attack, the worst case, the gap, and the worst-case MS-SSIM."""
    title = ATTACK_TITLES.get(attack, attack)
    msssim = "msssim_paper_target_adv_recon" if attack == "latent" else "msssim_paper_recon_adv_recon"
    return Layout(f"audit_{attack}", f"Attack audit: {title.lower()}, the paper's attack against the worst case", (
        Column(attack, f"attack_loss_{reference}", "loss", "loss", "paper attack", bold=False, digits=3),
        Column(attack, "attack_loss", "loss", "loss", "worst case", digits=3),
        Column(attack, f"attack_gap_{reference}", "mean", "mean", "attack gap", bold=False, digits=3),
        Column(attack, f"attack_gap_max_{reference}", "largest", "largest", "attack gap", bold=False, digits=3),
        Column(attack, msssim, "MSSSIM", "MSSSIM", "worst case"),
        *COLLAPSE_COLUMNS,  # a model that ignores its input would look robust under both attacks
    ))


def perceptual_layout(attack: str) -> Layout:
    """The reported MS-SSIM under the L2 attack of eq. 12/13 and under the attack that optimises MS-SSIM itself."""
    metric = "msssim_paper_target_adv_recon" if attack == "latent" else "msssim_paper_recon_adv_recon"
    standard = metric.replace("msssim_paper_", "msssim_")
    title = ATTACK_TITLES.get(attack, attack).lower()
    return Layout(f"perceptual_{attack}", f"MS-SSIM under the L2 {title} and under its perceptual version", (
        Column(attack, metric, "MSSSIM", "MSSSIM", "L2 attack"),
        Column(f"{attack}_msssim", metric, "MSSSIM", "MSSSIM", "perceptual attack"),
        Column(f"{attack}_msssim", standard, "standard MSSSIM", "standard MSSSIM", "perceptual attack"),
    ))


@dataclass(frozen=True)
class OrderFlag:
    """Two models ordered one way by the paper's attack and the other way by the worst case."""

    dataset: str
    attack: str
    budget: float
    models: tuple[str, str]
    paper: tuple[float, float]
    worst: tuple[float, float]

    def text(self) -> str:
        """One line for the report."""
        a, b = self.models
        return (f"{self.dataset}, {self.attack}, λ={self.budget:g}: {a} vs {b}: attack loss {self.paper[0]:.3f} vs "
                f"{self.paper[1]:.3f} under the paper's attack, {self.worst[0]:.3f} vs {self.worst[1]:.3f} in the "
                "worst case (the order flips)")


def order_flags(summary: pd.DataFrame, optimizer: str = "ensemble",
                reference: str = PAPER_MEMBER) -> list[OrderFlag]:
    """Every pair of models whose order differs between the paper's attack and the worst case."""
    part = summary[summary.optimizer == optimizer]
    flags = []
    for (dataset, attack, budget), group in part.groupby(["dataset", "attack", "budget"], sort=False):
        paper = group[group.metric == f"attack_loss_{reference}"].set_index("model")["mean"]
        worst = group[group.metric == "attack_loss"].set_index("model")["mean"]
        models = [m for m in worst.index if m in paper.index]
        for a, b in itertools.combinations(models, 2):
            if np.sign(paper[a] - paper[b]) * np.sign(worst[a] - worst[b]) < 0:
                flags.append(OrderFlag(dataset, attack, float(budget), (a, b), (paper[a], paper[b]),
                                       (worst[a], worst[b])))
    return flags


def bootstrap_difference(a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                         seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a − b`` over matched pairs and its 95% percentile bootstrap interval."""
    diff = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).reshape(-1)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, (samples, diff.size))].mean(axis=1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))
