"""How much to trust a number: the attack audit's gap, order flags, and bootstrap intervals for the best values.

- **Worst case.** Per attacked image, the strongest result of every attack of one kind (latent or maximum damage)
  that the suite ran on the same images at the same budget: the paper's ``lbfgs``, the ensemble
  (:mod:`aebench.attacks.ensemble`), ``pgd``, ... The images and targets of a cell depend only on the number of images
  and trials, so these measurements attacked the same (trial, image) pairs. Each metric of the worst case is the
  value of the attack that reached the lowest attack objective on that image (its MS-SSIM belongs to that
  perturbation), so the worst case is never weaker than any attack of the suite on any image.
- **Attack gap.** The paper's attack (the suite's ``lbfgs`` measurement) minus the worst case, per image: 0 when the
  paper's attack found the worst case, large when a model only looks robust because the attack was weak on it.
- **Order flags.** Two models whose order under the paper's attack differs from their order under the worst case.
- **Bootstrap intervals.** For a value a table marks as best, the 95% interval of its difference to the runner-up,
  resampling the (trial, image) pairs both models were attacked on (the same images: the pairs are matched),
  2,000 resamples (Efron and Tibshirani, "An Introduction to the Bootstrap", 1993). An interval that contains 0
  says the bold is not a finding.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from aebench.report.tables import ATTACK_TITLES, COLLAPSE_COLUMNS, Column, Layout
from aebench.results import CELLS_DIR

PAPER_MEMBER = "lbfgs"
"""The optimizer of the paper's attack (scipy's L-BFGS-B with the authors' settings)."""
WORST = "worst"
"""The optimizer name of the worst-case rows, which no single attack produced."""
OBJECTIVE = "attack_loss"
REACHED = 1e-3
"""An attack reached the worst case on an image when its objective is within this fraction (plus 1e-6) of it."""
BOOTSTRAP_SAMPLES = 2000
ROW_COLUMNS = ("dataset", "model", "seed", "attack", "optimizer", "metric", "budget", "trial", "value",
               "higher_is_better")
"""The columns of the worst-case rows (a subset of a run's rows), present even when there are none."""


def audit_layout(attack: str, reference: str = PAPER_MEMBER) -> Layout:
    """The audit table of one attack kind: the paper's attack, the worst case, the gap, and the worst-case MS-SSIM.

    Its rows are those of :func:`worst_case` (optimizer :data:`WORST`).
    """
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


def order_flags(summary: pd.DataFrame, optimizer: str = WORST,
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


@dataclass
class WorstCase:
    """The worst case of every (dataset, model, attack kind, budget) that more than one attack measured.

    Attributes:
        rows: Per-trial rows, shaped as the run's rows (optimizer :data:`WORST`): every metric of the worst case, the
            paper attack's ``attack_loss_lbfgs``, the gap ``attack_gap_lbfgs`` (per trial, the mean over images) and
            ``attack_gap_max_lbfgs`` (the largest over all images, one value).
        per_image: ``(dataset, model, measurement name) → metric → values``, all seeds joined, for the bootstrap.
        found_by: ``(dataset, attack, budget) → optimizer → images`` on which that attack reached the worst case
            (within :data:`REACHED`), and ``"images"``: how many were attacked (all models).
    """

    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(ROW_COLUMNS)))
    per_image: dict[tuple[str, str, str], dict[str, np.ndarray]] = field(default_factory=dict)
    found_by: dict[tuple[str, str, float], dict[str, int]] = field(default_factory=dict)


def load_values(path: Path) -> dict[str, np.ndarray] | None:
    """A measurement's stored per-image values (metric → trials × images, float64), or None if unreadable."""
    try:
        with np.load(path) as store:
            return {name: np.asarray(store[name], dtype=np.float64) for name in store.files}
    except (OSError, ValueError):
        return None


def worst_case(rows: pd.DataFrame, run_dir: Path, paper: str = PAPER_MEMBER,
               kinds: tuple[str, ...] = tuple(ATTACK_TITLES)) -> WorstCase:
    """Per image, the strongest result among a cell's attacks of one kind and budget (module docstring).

    Only attacks whose per-image values are stored, hold the objective and cover the same (trial, image) pairs
    take part; the noise baseline does not (it is not an attack).
    """
    out: list[dict[str, object]] = []
    per_image: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = {}
    found_by: dict[tuple[str, str, float], dict[str, int]] = {}
    attacks = rows[rows.attack.isin(kinds) & (rows.optimizer != "noise")]
    for (dataset, model, seed, attack, budget), group in attacks.groupby(
            ["dataset", "model", "seed", "attack", "budget"], sort=False):
        cell = run_dir / CELLS_DIR / f"{dataset}__{model}__s{seed}"
        stores = _stored_attacks(cell, group)
        if len(stores) < 2:
            continue
        worst, reached = _per_image_worst(stores)
        counts = found_by.setdefault((dataset, attack, float(budget)), {"images": 0})
        counts["images"] += worst[OBJECTIVE].size
        for name, hits in reached.items():
            counts[name] = counts.get(name, 0) + hits
        higher = group.drop_duplicates("metric").set_index("metric")["higher_is_better"].to_dict()
        per_trial = {m: (v.mean(axis=1), bool(higher.get(m, False))) for m, v in worst.items()}
        if paper in stores:
            gap = stores[paper][OBJECTIVE] - worst[OBJECTIVE]
            per_trial[f"{OBJECTIVE}_{paper}"] = (stores[paper][OBJECTIVE].mean(axis=1), bool(higher[OBJECTIVE]))
            per_trial[f"attack_gap_{paper}"] = (gap.mean(axis=1), False)
            per_trial[f"attack_gap_max_{paper}"] = (np.array([gap.max()]), False)
        out += [dict(dataset=dataset, model=model, seed=seed, attack=attack, optimizer=WORST, metric=metric,
                     budget=float(budget), trial=trial, value=float(v), higher_is_better=better)
                for metric, (values, better) in per_trial.items() for trial, v in enumerate(values.tolist())]
        store = per_image.setdefault((dataset, model, f"attack-{attack}-{WORST}-{float(budget):g}"), {})
        for metric, values in worst.items():
            store.setdefault(metric, []).append(values.reshape(-1))
    joined = {key: {m: np.concatenate(parts) for m, parts in store.items()} for key, store in per_image.items()}
    return WorstCase(pd.DataFrame(out, columns=list(ROW_COLUMNS)), joined, found_by)


def _stored_attacks(cell: Path, group: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """The group's stored attacks (optimizer → metric → trials × images), or none if their pairs differ."""
    stores = {}
    for measurement, optimizer in dict.fromkeys(zip(group.measurement, group.optimizer, strict=True)):
        values = load_values(cell / f"{measurement}.values.npz")
        if values is not None and OBJECTIVE in values:
            stores[optimizer] = values
    return stores if len({v[OBJECTIVE].shape for v in stores.values()}) == 1 else {}


def _per_image_worst(stores: dict[str, dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per image, every shared metric of the attack with the lowest objective; per attack, images where it got there."""
    names = list(stores)
    metrics = [m for m in stores[names[0]] if all(m in v for v in stores.values())]
    objective = np.stack([stores[n][OBJECTIVE] for n in names])  # (attacks, trials, images)
    pick = objective.argmin(axis=0)[None]  # the attacker minimises the objective
    worst = {m: np.take_along_axis(np.stack([stores[n][m] for n in names]), pick, 0)[0] for m in metrics}
    reached = objective <= worst[OBJECTIVE] + REACHED * np.abs(worst[OBJECTIVE]) + 1e-6
    return worst, {name: int(hits.sum()) for name, hits in zip(names, reached, strict=True)}
