"""``fd_classifier``: the Fréchet distance of generated images in the features of a per-dataset classifier.

The paper (Saseendran et al., NeurIPS 2022) reports FID with pytorch-fid's Inception-v3. Those weights cannot be
downloaded offline, so aebench's default generation-fidelity metric is the Fréchet distance (Heusel et al. 2017) in
the 128-d penultimate features of a small CNN trained once per dataset with a fixed seed, the "Fréchet classifier
distance" used for MNIST-like data. It is reported as ``fd_classifier`` and never called FID: Kynkäänniemi et al.
("The Role of ImageNet Classes in Fréchet Inception Distance", ICLR 2023) show how much such a distance depends on
the feature space, so its numbers are comparable only with other ``fd_classifier`` numbers computed with the same
classifier (dataset, seed, epochs and :data:`CLASSIFIER_VERSION`, all stored beside the weights).

Protocol: decode ``n_samples`` (default 10,000) draws from the model's prior in batches with one seeded CPU
generator, and compare their features with those of the whole test split.

The classifier (:class:`FeatureClassifier`): three 3×3 conv blocks (16, 32, 64 channels, batch norm, ReLU, 2×2 max
pool), adaptive average pooling to 4×4, a 128-unit dense layer whose ReLU output is the feature vector, and a linear
read-out. Trained with Adam and a one-cycle learning-rate schedule (peak 3e-3, batch 128, no augmentation) for a
fixed number of epochs per dataset (:data:`DEFAULT_EPOCHS`), the batch order drawn from a seeded generator, so the
same seed and device give the same weights. Training stops with an error, never with a shorter schedule, if it
runs longer than ``max_seconds``; a shorter schedule would silently change the feature space.

Cache: ``<cache_dir>/<dataset>-v<version>-s<seed>-e<epochs>.safetensors`` plus a ``.json`` copy of its metadata
(test accuracy, dataset, seed, epochs, device, training time, package versions), both written atomically.
``cache_dir`` is the argument, else ``$AEBENCH_CACHE/classifiers``, else ``~/.cache/aebench/classifiers``.

Accuracy gate (:data:`MIN_ACCURACY`): a classifier below its dataset's test-accuracy threshold is not cached and
raises :class:`ClassifierAccuracyError`, because features of a poor classifier make the distance meaningless. The
thresholds are ≥ 98% for MNIST and ≥ 90% for Fashion-MNIST (full data); the embedded ``fashion_mnist_mini``
(6,000 training images) is held to ≥ 80%. CelebA has no class labels and so no classifier: use
:func:`aebench.fidelity.fid_inception` there.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from aebench.checkpoint import atomic_write
from aebench.data import ImageDataset, dataset_info, load_dataset
from aebench.fidelity.frechet import feature_statistics, frechet_distance
from aebench.model import AutoEncoder
from aebench.provenance import package_versions
from aebench.training import pick_device

__all__ = [
    "CLASSIFIER_VERSION",
    "DEFAULT_EPOCHS",
    "MIN_ACCURACY",
    "ClassifierAccuracyError",
    "ClassifierTrainingError",
    "FeatureClassifier",
    "classifier_features",
    "default_cache_dir",
    "evaluate_accuracy",
    "fd_classifier",
    "fd_classifier_reference",
    "get_feature_classifier",
    "train_feature_classifier",
]

CLASSIFIER_VERSION = 1
"""Bumped whenever the architecture or the training recipe changes; part of the cache file name."""

FORMAT = "aebench-feature-classifier-v1"

DEFAULT_EPOCHS: dict[str, int] = {"mnist": 2, "fashion_mnist": 3, "fashion_mnist_mini": 8, "svhn": 4}
"""Epochs per dataset, chosen to clear :data:`MIN_ACCURACY` with a margin in a few CPU minutes. Measured on 2 shared
CPU cores (seed 0): Fashion-MNIST 3 epochs → 91.4% test accuracy in 173 s; fashion_mnist_mini 8 epochs → 89.8% in
82 s (15 epochs: 90.2%). MNIST and SVHN are set by analogy and have not been measured here."""

MIN_ACCURACY: dict[str, float] = {"mnist": 0.98, "fashion_mnist": 0.90, "fashion_mnist_mini": 0.80, "svhn": 0.88}
"""Test accuracy a classifier must reach before its features are used (see the module docstring)."""

FALLBACK_EPOCHS = 3
FALLBACK_MIN_ACCURACY = 0.80
FEATURE_DIM = 128
BATCH_SIZE = 128
PEAK_LR = 3e-3
DEFAULT_MAX_SECONDS = 1800.0


class ClassifierTrainingError(RuntimeError):
    """The feature classifier could not be trained (no labels, loss diverged, or over its time limit)."""


class ClassifierAccuracyError(RuntimeError):
    """A trained feature classifier missed its dataset's test-accuracy threshold."""


class FeatureClassifier(nn.Module):
    """Small CNN whose penultimate 128-d activations are the feature space of ``fd_classifier``.

    Args:
        in_channels: Image channels (1 for MNIST-like data, 3 for SVHN).
        num_classes: Number of labels.
        widths: Channels of the three conv blocks.
        feature_dim: Size of the penultimate (feature) layer.

    Attributes:
        num_features: ``feature_dim``, under the name torchmetrics' FID uses for custom feature modules.
        meta: Training metadata (dataset, seed, epochs, test accuracy, ...), filled by training or loading.
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, int, int] = (16, 32, 64),
                 feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            # No conv bias: batch norm's shift makes it redundant.
            layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = width
        # Adaptive pooling makes the head independent of the image size (32×32 and 64×64 alike).
        layers += [nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, feature_dim), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(feature_dim, num_classes)
        self.num_features = feature_dim
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "widths": list(widths),
                       "feature_dim": feature_dim}
        self.meta: dict[str, Any] = {}

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, feature_dim) of images in [0, 1]."""
        # Centring the input keeps the first batch-norm statistics well conditioned.
        return self.trunk(x * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.features(x))


def default_cache_dir() -> Path:
    """``$AEBENCH_CACHE/classifiers`` if the variable is set, else ``~/.cache/aebench/classifiers``."""
    root = os.environ.get("AEBENCH_CACHE")
    return (Path(root) if root else Path("~/.cache/aebench")).expanduser() / "classifiers"


def _cache_path(cache_dir: Path, dataset: str, seed: int, epochs: int) -> Path:
    return cache_dir / f"{dataset}-v{CLASSIFIER_VERSION}-s{seed}-e{epochs}.safetensors"


def _batched(dataset: ImageDataset, batch_size: int) -> Any:
    for start in range(0, len(dataset), batch_size):
        yield slice(start, start + batch_size)


@torch.no_grad()
def evaluate_accuracy(classifier: FeatureClassifier, dataset: ImageDataset, device: torch.device | str | None = None,
                      batch_size: int = 1000) -> float:
    """Fraction of ``dataset`` the classifier labels correctly."""
    if dataset.labels is None:
        raise ClassifierTrainingError(f"{dataset.info.name} has no labels, so there is no accuracy to measure.")
    device = torch.device(device) if device is not None else next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    correct = 0
    for index in _batched(dataset, batch_size):
        logits = classifier(dataset.batch(index).to(device))
        correct += int((logits.argmax(dim=1).cpu() == dataset.labels[index]).sum())
    classifier.train(was_training)
    return correct / len(dataset)


def train_feature_classifier(
    train_set: ImageDataset,
    test_set: ImageDataset,
    *,
    epochs: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    console: Console | None = None,
    progress: bool = True,
) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` from scratch; deterministic for a given seed and device.

    The accuracy threshold is not checked here (:func:`get_feature_classifier` does it), so this function can also
    be used to study the classifier.

    Args:
        train_set: Labelled training split.
        test_set: Labelled test split, for the accuracy stored in ``meta``.
        epochs: Full passes over ``train_set``.
        seed: Seeds the initialisation and the batch order.
        device: Where to train (default: CUDA when available).
        max_seconds: Wall-clock limit; exceeding it raises instead of returning a less-trained network.
        console: Where the progress bar goes.
        progress: Show a rich progress bar.

    Returns:
        The classifier in eval mode, with ``meta`` holding dataset, seed, epochs, test accuracy and timing.

    Raises:
        ClassifierTrainingError: Without labels, on a non-finite loss, or past ``max_seconds``.
    """
    name = train_set.info.name
    if train_set.labels is None or test_set.labels is None or train_set.info.num_classes is None:
        raise ClassifierTrainingError(
            f"{name} has no class labels, so no feature classifier can be trained for fd_classifier; use "
            "fid_inception (Inception features, weights supplied by you) for this dataset.")
    if epochs < 1:
        raise ValueError(f"epochs must be ≥ 1, got {epochs}.")
    device = pick_device(None if device is None else str(device))
    console = console or Console(stderr=True)
    # Seed a private RNG stream so that training neither depends on nor disturbs the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = FeatureClassifier(train_set.info.image_shape[0], train_set.info.num_classes).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=PEAK_LR / 25)
    steps_per_epoch = (len(train_set) + BATCH_SIZE - 1) // BATCH_SIZE
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PEAK_LR, total_steps=epochs * steps_per_epoch)
    order_rng = torch.Generator().manual_seed(seed)
    labels = train_set.labels
    start = time.perf_counter()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    classifier.train()
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"feature classifier on {name}", total=epochs * steps_per_epoch, info="")
        for epoch in range(epochs):
            order = torch.randperm(len(train_set), generator=order_rng)
            loss_sum, correct = 0.0, 0
            for step in range(steps_per_epoch):
                index = order[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
                x, y = train_set.batch(index).to(device), labels[index].to(device)
                logits = classifier(x)
                loss = F.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise ClassifierTrainingError(f"Feature classifier loss became {loss.item()} at epoch {epoch + 1}"
                                                  f" step {step + 1} on {name}.")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += loss.item()
                correct += int((logits.argmax(dim=1) == y).sum())
                elapsed = time.perf_counter() - start
                if max_seconds is not None and elapsed > max_seconds:
                    raise ClassifierTrainingError(
                        f"Training the {name} feature classifier passed max_seconds={max_seconds:g} at epoch "
                        f"{epoch + 1}/{epochs}. Train on a GPU (device='cuda') or raise max_seconds; the schedule is"
                        " never shortened, since that would change the feature space.")
                seen = min((step + 1) * BATCH_SIZE, len(train_set))
                bar.update(task, advance=1, info=f"ep {epoch + 1} loss={loss_sum / (step + 1):.3f} "
                                                 f"acc={correct / seen:.3f}")
    train_seconds = time.perf_counter() - start
    classifier.eval()
    accuracy = evaluate_accuracy(classifier, test_set, device)
    classifier.meta = {"dataset": name, "seed": seed, "epochs": epochs, "version": CLASSIFIER_VERSION,
                       "test_accuracy": accuracy, "train_seconds": round(train_seconds, 1),
                       "train_size": len(train_set), "test_size": len(test_set), "device": str(device),
                       "batch_size": BATCH_SIZE, "peak_lr": PEAK_LR, "config": classifier.config,
                       "versions": package_versions()}
    return classifier


def _save(path: Path, classifier: FeatureClassifier) -> None:
    header = {"format": FORMAT, **classifier.meta}
    state = {k: v.detach().to("cpu").contiguous() for k, v in classifier.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"aebench": json.dumps(header)}))
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(header, indent=2) + "\n"))


def _load(path: Path, device: torch.device, expected: dict[str, Any]) -> FeatureClassifier | None:
    """The cached classifier at ``path``, or None when the file is unreadable or from another recipe."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {}).get("aebench", "{}"))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
        # The file name already encodes these; checking the header too catches a renamed or copied file.
        wanted = {"format": FORMAT, "version": CLASSIFIER_VERSION, **expected}
        if any(header.get(key) != value for key, value in wanted.items()):
            return None
        config = header["config"]
        classifier = FeatureClassifier(config["in_channels"], config["num_classes"], tuple(config["widths"]),
                                       config["feature_dim"])
        classifier.load_state_dict(state)
    except Exception:  # a truncated or foreign file is simply retrained
        return None
    classifier.meta = header
    return classifier.to(device).eval()


def get_feature_classifier(
    dataset: str,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: torch.device | str | None = None,
    *,
    seed: int = 0,
    epochs: int | None = None,
    min_accuracy: float | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    retrain: bool = False,
    console: Console | None = None,
    progress: bool = True,
) -> FeatureClassifier:
    """The cached feature classifier of ``dataset``, training (and caching) it on first use.

    Args:
        dataset: A labelled dataset name (``mnist``, ``fashion_mnist``, ``fashion_mnist_mini``, ``svhn``).
        data_root: Folder with the dataset files (default ``$AEBENCH_DATA``).
        cache_dir: Where classifiers are cached (default ``$AEBENCH_CACHE/classifiers`` or
            ``~/.cache/aebench/classifiers``).
        device: Device of the returned classifier, and of training (default: CUDA when available).
        seed: Training seed; part of the cache key.
        epochs: Training epochs (default :data:`DEFAULT_EPOCHS`); part of the cache key.
        min_accuracy: Required test accuracy (default :data:`MIN_ACCURACY`).
        max_seconds: Training time limit (see :func:`train_feature_classifier`).
        retrain: Ignore a cached file and train again.
        console: Where messages and the progress bar go.
        progress: Show a progress bar while training.

    Returns:
        The classifier in eval mode with frozen parameters; ``meta`` holds its provenance.

    Raises:
        ClassifierAccuracyError: If the classifier (cached or new) is below ``min_accuracy``.
        ClassifierTrainingError: For an unlabelled dataset, a diverging loss, or training past ``max_seconds``.
        aebench.data.DataError: If the dataset files are missing.
    """
    info = dataset_info(dataset)
    if info.num_classes is None:
        raise ClassifierTrainingError(
            f"{dataset} has no class labels, so fd_classifier has no classifier to take features from; use "
            "fid_inception (Inception features, weights supplied by you) for this dataset.")
    epochs = DEFAULT_EPOCHS.get(dataset, FALLBACK_EPOCHS) if epochs is None else int(epochs)
    threshold = MIN_ACCURACY.get(dataset, FALLBACK_MIN_ACCURACY) if min_accuracy is None else float(min_accuracy)
    torch_device = pick_device(None if device is None else str(device))
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = _cache_path(folder, dataset, seed, epochs)
    expected = {"dataset": dataset, "seed": seed, "epochs": epochs}
    classifier = None if retrain or not path.is_file() else _load(path, torch_device, expected)
    fresh = classifier is None
    if classifier is None:
        console = console or Console(stderr=True)
        train_set = load_dataset(dataset, "train", data_root)
        test_set = load_dataset(dataset, "test", data_root)
        with torch.enable_grad():  # callers such as fd_classifier run under no_grad; training needs gradients
            classifier = train_feature_classifier(train_set, test_set, epochs=epochs, seed=seed, device=torch_device,
                                                  max_seconds=max_seconds, console=console, progress=progress)
    accuracy = float(classifier.meta.get("test_accuracy", 0.0))
    if accuracy < threshold:
        where = "was trained" if fresh else f"is cached at {path}"
        raise ClassifierAccuracyError(
            f"The {dataset} feature classifier {where} with test accuracy {accuracy:.4f} < the required "
            f"{threshold:.2f} (seed {seed}, {epochs} epochs); its features would make fd_classifier meaningless. "
            "Try more epochs (epochs=...), another seed, or check the dataset files.")
    if fresh:
        # Cached only once it passed the gate, so a bad classifier is never picked up later.
        _save(path, classifier)
        classifier.meta["path"] = str(path)
    else:
        classifier.meta["path"] = str(path)
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    return classifier.to(torch_device).eval()


@torch.no_grad()
def classifier_features(classifier: FeatureClassifier, images: Tensor | ImageDataset,
                        batch_size: int = 1000) -> NDArray[np.float64]:
    """Penultimate features of images in [0, 1] (a tensor, or every image of a dataset), as float64 (N, F)."""
    device = next(classifier.parameters()).device
    chunks: list[Tensor] = []
    if isinstance(images, ImageDataset):
        for index in _batched(images, batch_size):
            chunks.append(classifier.features(images.batch(index).to(device)).cpu())
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
    console: Console | None = None,
    progress: bool = True,
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
        console: Where classifier-training progress goes.
        progress: Show a progress bar if the classifier must be trained.

    Returns:
        The squared Fréchet distance, as a float.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be ≥ 2 for a covariance, got {n_samples}.")
    torch_device = torch.device(device) if device is not None else model.device
    if classifier is None:
        classifier = get_feature_classifier(dataset_name, data_root, cache_dir, torch_device, console=console,
                                            progress=progress)
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


@torch.no_grad()
def fd_classifier_reference(
    dataset_name: str,
    n_samples: int = 10000,
    *,
    data_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    classifier: FeatureClassifier | None = None,
) -> float:
    """``fd_classifier`` of real training images against the test split: the floor a perfect generator reaches.

    Useful next to a table of ``fd_classifier`` values, since the distance is never exactly 0 with finite samples.
    Draws ``min(n_samples, len(train))`` training images without replacement with a seeded generator.
    """
    torch_device = pick_device(None if device is None else str(device))
    if classifier is None:
        classifier = get_feature_classifier(dataset_name, data_root, cache_dir, torch_device)
    classifier = classifier.to(torch_device).eval()
    train_set = load_dataset(dataset_name, "train", data_root)
    test_set = load_dataset(dataset_name, "test", data_root)
    index = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))[:n_samples]
    mu_fake, sigma_fake = feature_statistics(classifier_features(classifier, train_set.batch(index)))
    mu_real, sigma_real = _reference_statistics(classifier, test_set)
    return frechet_distance(mu_fake, sigma_fake, mu_real, sigma_real)
