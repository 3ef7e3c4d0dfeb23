"""Computing one measurement of a cell: reconstruction, fidelity, one (attack, optimizer, budget), downstream.

Each kind is one function from the cell's shared context and the measurement's own settings to a list of
:class:`Value` (a metric's value per trial), plus example images for attacks. Which function runs is looked up in
:data:`MEASURE` by the measurement's kind; the settings a function reads are exactly the ones that key the
measurement (:mod:`aebench.runner.plan`), so nothing else can change its numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aebench.attacks import ATTACKS
from aebench.attacks.batched import BatchedAttack, attack_in_chunks
from aebench.data import ImageDataset, load_dataset
from aebench.downstream import downstream_accuracy, train_latent_classifier
from aebench.metrics import METRICS, AttackOutcome
from aebench.metrics.reconstruction import active_units, reconstruction_mse
from aebench.models.base import AutoEncoder
from aebench.progress import ProgressLog
from aebench.runner.plan import NOISE_OPTIMIZER, Measurement
from aebench.sampling import CellImages, attack_generator, cell_images
from aebench.utils import stable_hash


@dataclass(frozen=True)
class Value:
    """A metric's value per trial (one value for per-model numbers)."""

    metric: str
    values: list[float]
    higher_is_better: bool
    attack: str = "none"
    optimizer: str = "none"
    budget: float = 0.0


@dataclass
class Outcome:
    """What a measurement produced: its values and, for attacks, a few example images for Figure 3."""

    values: list[Value]
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    per_image: dict[str, np.ndarray] = field(default_factory=dict)  # metric → (T, N), for bootstrap intervals


@dataclass
class CellContext:
    """What the measurements of one cell share, each piece loaded on first use.

    Attributes:
        model: The trained or loaded model, in eval mode on ``device``.
        dataset: Dataset name.
        seed: The cell's seed.
        device: Where measurements run.
        data_root: Where the dataset files are.
        cache_dir: Where the feature classifiers are cached.
        progress: Where progress lines go.
    """

    model: AutoEncoder
    dataset: str
    seed: int
    device: torch.device
    data_root: str | None
    cache_dir: str
    progress: ProgressLog
    _test_set: ImageDataset | None = None
    _images: dict[tuple[int, int], CellImages] = field(default_factory=dict)
    _latent: dict[str, Tensor] = field(default_factory=dict)  # latent-attack x_adv by attack settings

    @property
    def test_set(self) -> ImageDataset:
        """The dataset's test split."""
        if self._test_set is None:
            self._test_set = load_dataset(self.dataset, "test", self.data_root)
        return self._test_set

    def images(self, n_images: int, n_trials: int) -> CellImages:
        """The cell's attacked images for a protocol (N, T)."""
        key = (n_images, n_trials)
        if key not in self._images:
            self._images[key] = cell_images(self.test_set, n_images, n_trials, self.seed)
        return self._images[key]


def _reconstruction(ctx: CellContext, m: Measurement) -> Outcome:
    mse = reconstruction_mse(ctx.model, ctx.test_set, ctx.device)
    units = active_units(ctx.model, ctx.test_set, ctx.device)
    values = [Value("test_recon_mse", [mse], higher_is_better=False),
              Value("active_units", [float(units)], higher_is_better=True)]
    if hasattr(ctx.model, "certified_radius"):  # a model with a certificate (LipschitzVAE): its mean radius
        values.append(Value("certified_radius", [certified_mean(ctx.model, ctx.test_set, ctx.device)], True))
    return Outcome(values)


CERTIFIED_RECONSTRUCTION_RADIUS = 5.0
"""r of the certificate reported in Table 1: Barrett et al.'s default desired radius r* = 5."""


@torch.no_grad()
def certified_mean(model: AutoEncoder, test_set: ImageDataset, device: torch.device, batch_size: int = 500) -> float:
    """Mean certified input radius over the test split for reconstruction radius r = 5 (Barrett et al. 2022)."""
    radii = [model.certified_radius(test_set.batch(slice(s, s + batch_size)).to(device),
                                    CERTIFIED_RECONSTRUCTION_RADIUS).cpu()
             for s in range(0, len(test_set), batch_size)]
    return float(torch.cat(radii).double().mean())


def _fidelity(ctx: CellContext, m: Measurement) -> Outcome:
    # Imported here: the fidelity package is only needed by suites that measure fidelity.
    from aebench.fidelity import fd_classifier, fid_inception

    s = m.settings
    if s["metric"] == "fd_classifier":
        value = fd_classifier(ctx.model, ctx.dataset, s["n_samples"], data_root=ctx.data_root,
                              cache_dir=Path(ctx.cache_dir) / "classifiers", device=ctx.device, seed=ctx.seed,
                              classifier_epochs=s["classifier_epochs"], min_accuracy=s["min_accuracy"],
                              progress=ctx.progress)
    else:
        value = fid_inception(ctx.model, ctx.dataset, weights_path=s["weights"], n_samples=s["n_samples"],
                              data_root=ctx.data_root, device=ctx.device, seed=ctx.seed)
    return Outcome([Value(s["metric"], [value], higher_is_better=False)])


def run_cell_attack(ctx: CellContext, s: dict[str, Any], label: str) -> BatchedAttack:
    """Run one attack of the cell on its images; deterministic for its settings."""
    images = ctx.images(s["n_images"], s["n_trials"])
    generator = attack_generator(ctx.seed, s["attack"], s["optimizer"], s["budget"])
    with ctx.progress.task(label, 1.0, unit="") as task:
        return attack_in_chunks(ctx.model, images.x, images.target, attack=s["attack"], optimizer=s["optimizer"],
                                budget=s["budget"], options=s["options"], generator=generator, chunk=s["batch"],
                                device=ctx.device, progress=task.update)


def _attack_key(s: dict[str, Any]) -> str:
    return stable_hash({k: s[k] for k in ("attack", "optimizer", "budget", "options", "n_images", "n_trials",
                                          "batch")})


@torch.no_grad()
def _outcome(ctx: CellContext, images: CellImages, attack: str, x_adv: Tensor, objective: Tensor,
             chunk: int) -> AttackOutcome:
    """Everything the metrics need about an attacked batch (reconstructions computed in chunks)."""
    def reconstruct(x: Tensor) -> Tensor:
        return torch.cat([ctx.model.reconstruct(x[i : i + chunk].to(ctx.device)).cpu()
                          for i in range(0, len(x), chunk)])

    target = images.target if ATTACKS[attack].needs_target else None
    return AttackOutcome(attack=ATTACKS[attack].kind, x=images.x, x_adv=x_adv, recon=reconstruct(images.x),
                         adv_recon=reconstruct(x_adv), objective=objective, target=target,
                         target_recon=None if target is None else reconstruct(target))


def _attack(ctx: CellContext, m: Measurement) -> Outcome:
    s = m.settings
    images = ctx.images(s["n_images"], s["n_trials"])
    result = run_cell_attack(ctx, s, f"{ctx.dataset} {m.name}")
    if s["attack"] == "latent" and s["optimizer"] != NOISE_OPTIMIZER:
        ctx._latent[_attack_key(s)] = result.x_adv  # the downstream measurement scores these images
    outcome = _outcome(ctx, images, s["attack"], result.x_adv, result.objective, s["batch"])

    def per_trial(values: Tensor) -> list[float]:
        return values.reshape(images.n_trials, images.n_images).double().mean(dim=1).tolist()

    where = (s["attack"], s["optimizer"], s["budget"])
    per_image = {name: METRICS[name].fn(outcome).detach() for name in s["metrics"]}
    values = [Value(name, per_trial(per_image[name]), METRICS[name].higher_is_better, *where) for name in s["metrics"]]
    if result.capped is not None:  # how often the iteration cap, not convergence, ended the search
        values.append(Value("iteration_cap_hit", per_trial(result.capped.double()), False, *where))
    for member, member_values in result.members.items():
        # The attack loss each ensemble member reached alone, and how far it is from the worst case found.
        values.append(Value(f"attack_loss_{member}", per_trial(member_values), True, *where))
        values.append(Value(f"attack_gap_{member}", per_trial(member_values - result.objective), False, *where))
        values.append(Value(f"attack_gap_max_{member}", [float((member_values - result.objective).max())], False,
                            *where))
    examples = {}
    if s["optimizer"] != NOISE_OPTIMIZER and s["examples"] > 0:
        for part in ("x", "recon", "x_adv", "adv_recon", "target"):
            tensor = getattr(outcome, part)
            if tensor is not None:
                examples[part] = (tensor[: s["examples"]].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    shape = (images.n_trials, images.n_images)
    return Outcome(values, examples, {k: v.reshape(shape).float().numpy() for k, v in per_image.items()})


def _downstream(ctx: CellContext, m: Measurement) -> Outcome:
    s = m.settings
    attack = {**s["attack"], "attack": "latent", "budget": s["budget"], "n_images": s["n_images"],
              "n_trials": s["n_trials"], "batch": s["batch"]}
    attacked = ctx._latent.get(_attack_key(attack))
    if attacked is None:  # the attack measurement finished in an earlier run: the same settings give the same images
        attacked = run_cell_attack(ctx, attack, f"{ctx.dataset} downstream: latent attack λ={s['budget']:g}").x_adv
    train_set = load_dataset(ctx.dataset, "train", ctx.data_root)
    classifier = train_latent_classifier(ctx.model, train_set, epochs=s["epochs"], seed=ctx.seed, device=ctx.device,
                                         progress=ctx.progress)
    result = downstream_accuracy(ctx.model, classifier, ctx.test_set, ctx.images(s["n_images"], s["n_trials"]),
                                 attacked, s["budget"])
    return Outcome([
        Value("downstream_clean_accuracy", [100 * result.clean_accuracy], higher_is_better=True),
        Value("downstream_attacked_accuracy", [100 * v for v in result.attacked_accuracy_trials], True, "latent",
              attack["optimizer"], s["budget"]),
    ])


MEASURE: dict[str, Callable[[CellContext, Measurement], Outcome]] = {
    "reconstruction": _reconstruction,
    "fidelity": _fidelity,
    "attack": _attack,
    "downstream": _downstream,
}
"""The function that computes each kind of measurement."""
