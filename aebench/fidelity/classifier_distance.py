"""``fd_classifier``: the Fréchet distance of generated images in the features of a per-dataset classifier.

The paper (Saseendran et al., NeurIPS 2022) reports FID with pytorch-fid's Inception-v3. Those weights cannot be
downloaded offline, so aebench's default generation-fidelity metric is the Fréchet distance (Heusel et al., NeurIPS
2017) in the 128-d penultimate features of a small CNN trained once per dataset (:mod:`aebench.fidelity.classifier`).
It is reported as ``fd_classifier`` and never called FID: Kynkäänniemi et al. ("The Role of ImageNet Classes in
Fréchet Inception Distance", ICLR 2023) show how much such a distance depends on the feature space, so its numbers
are comparable only with other ``fd_classifier`` numbers computed with the same classifier.

Protocol: decode ``n_samples`` (default 10,000) draws from the model's prior in batches with one seeded CPU
generator, and compare their features with those of the whole test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from aebench.data import ImageDataset, load_dataset
from aebench.fidelity.classifier import FeatureClassifier, get_feature_classifier
from aebench.fidelity.frechet import feature_statistics, frechet_distance
from aebench.models.base import AutoEncoder
from aebench.progress import SILENT, ProgressLog

__all__ = ["classifier_features", "fd_classifier"]


@torch.no_grad()
def classifier_features(classifier: FeatureClassifier, images: Tensor | ImageDataset,
                        batch_size: int = 1000) -> NDArray[np.float64]:
    """Penultimate features of images in [0, 1] (a tensor, or every image of a dataset), as float64 (N, F)."""
    device = next(classifier.parameters()).device
    chunks: list[Tensor] = []
    if isinstance(images, ImageDataset):
        for start in range(0, len(images), batch_size):
            chunks.append(classifier.features(images.batch(slice(start, start + batch_size)).to(device)).cpu())
    else:
        for start in range(0, images.shape[0], batch_size):
            chunks.append(classifier.features(images[start : start + batch_size].to(device)).cpu())
    return torch.cat(chunks).to(torch.float64).numpy()


def _reference_statistics(classifier: FeatureClassifier, test_set: ImageDataset) -> tuple[NDArray, NDArray]:
    """Feature statistics of the test split, computed once per classifier object."""
    store: dict[Any, tuple[NDArray, NDArray]] = classifier.__dict__.setdefault("_statistics", {})
    key = (test_set.info.name, test_set.split, len(test_set))
    if key not in store:
        store[key] = feature_statistics(classifier_features(classifier, test_set))
    return store[key]


def _check_images(images: Tensor, dataset: str, shape: tuple[int, ...]) -> None:
    if tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"The model's samples have shape {tuple(images.shape[1:])}, but {dataset} images are "
                         f"{tuple(shape)}; was the model trained on another dataset?")
    if not torch.isfinite(images).all():
        raise ValueError("The model's samples contain NaN or infinite values.")


@torch.no_grad()
def fd_classifier(
    model: AutoEncoder,
    dataset_name: str,
    n_samples: int = 10000,
    *,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    batch_size: int = 500,
    classifier: FeatureClassifier | None = None,
    classifier_epochs: int | None = None,
    min_accuracy: float | None = None,
    progress: ProgressLog = SILENT,
) -> float:
    """Fréchet distance between classifier features of ``n_samples`` prior samples and of the test split.

    Reported as ``fd_classifier`` (lower is better); it is not FID and not comparable with FID (module docstring).

    Args:
        model: The autoencoder; sampled in eval mode (its mode is restored afterwards).
        dataset_name: Dataset the model was trained on; its test split is the reference set.
        n_samples: Number of generated images.
        data_root: Folder with the dataset files.
        cache_dir: Classifier cache folder (see :func:`get_feature_classifier`).
        device: Device for sampling and features (default: the model's device).
        seed: Seeds the CPU generator of the prior samples; with ``batch_size`` it fixes the samples.
        batch_size: Images decoded per batch.
        classifier: A classifier to use instead of the cached one (e.g. in tests).
        classifier_epochs: Epochs of the feature classifier before its gate (default: the dataset's).
        min_accuracy: The classifier's accuracy gate (default: the dataset's).
        progress: Where progress goes if the classifier must be trained.

    Returns:
        The squared Fréchet distance, as a float.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be ≥ 2 for a covariance, got {n_samples}.")
    torch_device = torch.device(device) if device is not None else model.device
    if classifier is None:
        classifier = get_feature_classifier(dataset_name, data_root, cache_dir, torch_device, epochs=classifier_epochs,
                                            min_accuracy=min_accuracy, progress=progress)
    classifier = classifier.to(torch_device).eval()
    test_set = load_dataset(dataset_name, "test", data_root)
    mu_real, sigma_real = _reference_statistics(classifier, test_set)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    chunks: list[NDArray[np.float64]] = []
    try:
        for start in range(0, n_samples, batch_size):
            images = model.sample(min(batch_size, n_samples - start), generator).to(torch_device)
            _check_images(images, dataset_name, test_set.info.image_shape)
            chunks.append(classifier_features(classifier, images.clamp(0.0, 1.0)))
    finally:
        model.train(was_training)
    mu_fake, sigma_fake = feature_statistics(np.concatenate(chunks))
    return frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)
