"""Per-model measurements of a suite cell beside the attacks: reconstruction, fidelity, downstream accuracy.

Fidelity (Tables 1-2 of Saseendran et al., NeurIPS 2022): ``fd_classifier``, the Fréchet distance in the
features of a classifier trained on the dataset (never called FID; Kynkäänniemi et al., ICLR 2023, show how
much the feature space matters), and Inception FID when the user supplies the weights. Downstream (Table 3):
an MLP on frozen latents, clean and under the latent-space attack at λ = 1. Every value becomes a tidy row.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aebench.data import ImageDataset, dataset_info, load_dataset
from aebench.model import AutoEncoder
from aebench.suite import Cell
from aebench.training import reconstruction_mse


def model_row(base: dict[str, Any], metric: str, value: float, higher_is_better: bool, started: float,
              attack: str = "none", optimizer: str = "none", budget: float = 0.0, trial: int = 0) -> dict[str, Any]:
    """A tidy row for a per-model number (attack "none" unless it is measured under an attack)."""
    return {**base, "attack": attack, "optimizer": optimizer, "budget": budget, "trial": trial, "metric": metric,
            "value": float(value), "higher_is_better": higher_is_better, "wall_time": time.perf_counter() - started}


def reconstruction_rows(base: dict[str, Any], model: AutoEncoder, test_set: ImageDataset,
                        device: torch.device) -> list[dict[str, Any]]:
    """Test-set reconstruction MSE of the clean model."""
    started = time.perf_counter()
    return [model_row(base, "test_recon_mse", reconstruction_mse(model, test_set, device), False, started)]


def fidelity_rows(cell: Cell, base: dict[str, Any], model: AutoEncoder, device: torch.device) -> list[dict[str, Any]]:
    """``fd_classifier`` for labelled datasets, and ``fid_inception`` when the suite names the weights file."""
    from aebench.fidelity.feature_classifier import fd_classifier
    from aebench.fidelity.inception import fid_inception

    spec, suite = cell.suite.fidelity, cell.suite
    if spec is None:
        return []
    rows = []
    if dataset_info(cell.dataset).num_classes is not None:  # the feature classifier needs labels
        started = time.perf_counter()
        value = fd_classifier(model, cell.dataset, spec.n_samples, data_root=suite.data_root,
                              cache_dir=Path(suite.cache_dir) / "classifiers", device=device, seed=cell.seed)
        rows.append(model_row(base, "fd_classifier", value, False, started))
    if spec.inception_weights:
        started = time.perf_counter()
        value = fid_inception(model, cell.dataset, weights_path=spec.inception_weights, n_samples=spec.n_samples,
                              data_root=suite.data_root, device=device, seed=cell.seed)
        rows.append(model_row(base, "fid_inception", value, False, started))
    return rows


def downstream_rows(cell: Cell, base: dict[str, Any], model: AutoEncoder, test_set: ImageDataset,
                    attacked: Tensor | None, source_labels: Tensor, device: torch.device,
                    optimizer: str) -> list[dict[str, Any]]:
    """Clean accuracy (whole test split) and per-trial accuracy on the latent attack's images, in percent.

    Args:
        attacked: The runner's latent-attack images at the downstream budget, trial-major (T·N, C, H, W); the
            classifier is scored on them instead of attacking again.
        source_labels: True labels of the attacked images.
    """
    from aebench.downstream import predict_labels, train_latent_classifier, trial_accuracies

    spec, suite = cell.suite.downstream, cell.suite
    if spec is None or test_set.labels is None or attacked is None:
        return []
    started = time.perf_counter()
    train_set = load_dataset(cell.dataset, "train", suite.data_root)
    classifier = train_latent_classifier(model, train_set, epochs=spec.epochs, seed=cell.seed, device=device,
                                         progress=False)
    clean = (predict_labels(model, classifier, test_set.batch(slice(None))) == test_set.labels).double().mean()
    rows = [model_row(base, "downstream_clean_accuracy", 100 * clean.item(), True, started)]
    per_trial = trial_accuracies(model, classifier, attacked, source_labels, suite.n_trials, suite.n_images)
    rows += [model_row(base, "downstream_attacked_accuracy", 100 * v, True, started, attack="latent",
                       optimizer=optimizer, budget=spec.budget, trial=t) for t, v in enumerate(per_trial.tolist())]
    return rows
