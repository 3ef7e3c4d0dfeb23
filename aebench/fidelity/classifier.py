"""The feature classifier behind ``fd_classifier``: a small CNN, its training rule, its accuracy gate and its cache.

The network (:class:`FeatureClassifier`): three 3×3 conv blocks (16, 32, 64 channels, batch norm, ReLU, 2×2 max
pool), adaptive average pooling to 4×4, a 128-unit dense layer whose ReLU output is the feature vector, and a linear
read-out, trained once per dataset with a fixed seed.

Training rule (:func:`train_feature_classifier`): Adam at a constant learning rate of 1e-3, batch 128, no
augmentation, the batch order drawn from a seeded generator (same seed and device, same weights). It trains
``epochs`` epochs (:data:`DEFAULT_EPOCHS` per dataset), then checks the test accuracy after every further epoch and
stops at the first that meets the gate (:data:`MIN_ACCURACY`), at most ``3 × epochs`` epochs in all
(:data:`MAX_EPOCH_FACTOR`). The learning rate does not depend on the epoch count, so the classifier after E epochs is
the same whatever the cap: extending training changes nothing that was trained before. Measured on 2 CPU cores,
seed 0: full Fashion-MNIST 3 epochs → 90.4% (gate 90%) in 107 s; ``fashion_mnist_mini`` 8 epochs → 88.6% (gate 80%)
in 27 s; an 8,000-image Fashion-MNIST subset 2 epochs → 85.2%, 8 epochs → 89.0%. The gate checks that the features
separate the classes; the accuracy is a property of the feature space, never a reported result.

Accuracy gate: a classifier below its dataset's threshold is not cached and raises :class:`ClassifierAccuracyError`,
because the features of a poor classifier make the distance meaningless: ≥ 98% for MNIST, ≥ 90% for Fashion-MNIST
and ≥ 88% for SVHN (full data), ≥ 80% for the embedded ``fashion_mnist_mini``. A suite's
``fidelity: {classifier_epochs: N, min_accuracy: X}`` replaces the defaults. CelebA has no labels and so no
classifier: use :func:`aebench.fidelity.fid_inception` there.

Cache: ``<cache_dir>/<dataset>-v<version>-<key>.safetensors`` plus a ``.json`` copy of its metadata (test accuracy
per epoch, epochs trained, dataset files, seed, device, training time, package versions), both written atomically.
The key covers the dataset's files (:func:`aebench.data.data_fingerprint`), the seed, the epochs and the gate, so a
classifier is never reused for other data. ``cache_dir`` is the argument, else ``$AEBENCH_CACHE/classifiers``, else
``~/.cache/aebench/classifiers``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from aebench.data import ImageDataset, data_fingerprint, dataset_info, load_dataset
from aebench.progress import SILENT, ProgressLog
from aebench.provenance import package_versions
from aebench.utils import atomic_write, atomic_write_text, pick_device, stable_hash

__all__ = [
    "CLASSIFIER_VERSION",
    "DEFAULT_EPOCHS",
    "MAX_EPOCH_FACTOR",
    "MIN_ACCURACY",
    "ClassifierAccuracyError",
    "ClassifierTrainingError",
    "FeatureClassifier",
    "default_cache_dir",
    "evaluate_accuracy",
    "get_feature_classifier",
    "train_feature_classifier",
]

CLASSIFIER_VERSION = 2
"""Bumped whenever the architecture or the training rule changes; part of the cache file name."""

FORMAT = "aebench-feature-classifier-v1"

DEFAULT_EPOCHS: dict[str, int] = {"mnist": 2, "fashion_mnist": 3, "fashion_mnist_mini": 8, "svhn": 4}
"""Epochs trained before the gate is first checked (see the module docstring for the measured accuracies)."""

MIN_ACCURACY: dict[str, float] = {"mnist": 0.98, "fashion_mnist": 0.90, "fashion_mnist_mini": 0.80, "svhn": 0.88}
"""Test accuracy a classifier must reach before its features are used (see the module docstring)."""

MAX_EPOCH_FACTOR = 3
"""Below the gate after ``epochs`` epochs, training goes on one epoch at a time up to this many times ``epochs``."""

FALLBACK_EPOCHS = 3
FALLBACK_MIN_ACCURACY = 0.80
FEATURE_DIM = 128
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
DEFAULT_MAX_SECONDS = 3600.0


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
    min_accuracy: float | None = None,
    max_epochs: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    progress: ProgressLog = SILENT,
) -> FeatureClassifier:
    """Train a :class:`FeatureClassifier` by the rule of the module docstring; deterministic for a seed and device.

    The gate itself is not enforced here (:func:`get_feature_classifier` does it), so this function can also be used
    to study the classifier.

    Args:
        train_set: Labelled training split.
        test_set: Labelled test split, for the accuracy checks and the accuracy stored in ``meta``.
        epochs: Epochs trained before the accuracy is first checked.
        min_accuracy: Keep training past ``epochs``, one epoch at a time, until the test accuracy reaches this
            (None: stop after ``epochs``).
        max_epochs: The cap on epochs (default ``MAX_EPOCH_FACTOR × epochs``).
        seed: Seeds the initialisation and the batch order.
        device: Where to train (default: CUDA when available).
        max_seconds: Wall-clock limit; exceeding it raises instead of returning a less-trained network.
        progress: Where progress lines go.

    Returns:
        The classifier in eval mode, with ``meta`` holding dataset, seed, epochs, test accuracies and timing.

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
    cap = max_epochs if max_epochs is not None else (MAX_EPOCH_FACTOR * epochs if min_accuracy is not None else epochs)
    device = pick_device(device)
    # Seed a private RNG stream so that training neither depends on nor disturbs the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = FeatureClassifier(train_set.info.image_shape[0], train_set.info.num_classes).to(device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=LEARNING_RATE)
    order_rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    accuracies: list[float] = []  # after every epoch from ``epochs`` on, where the gate may stop training
    trained = 0
    while trained < cap and not (accuracies and min_accuracy is not None and accuracies[-1] >= min_accuracy):
        with progress.task(f"feature classifier on {name}, epoch {trained + 1}", len(train_set), "images") as task:
            _train_classifier_epoch(classifier, optimizer, train_set, order_rng, device, task,
                                    deadline=None if max_seconds is None else start + max_seconds)
        trained += 1
        if trained >= epochs:
            accuracies.append(evaluate_accuracy(classifier, test_set, device))
            progress.print(f"feature classifier on {name}: epoch {trained}, test accuracy {accuracies[-1]:.4f}")
    classifier.eval()
    classifier.meta = {"dataset": name, "seed": seed, "epochs": epochs, "epochs_trained": trained,
                       "min_accuracy": min_accuracy, "version": CLASSIFIER_VERSION, "test_accuracy": accuracies[-1],
                       "test_accuracy_per_epoch": accuracies, "train_seconds": round(time.perf_counter() - start, 1),
                       "train_size": len(train_set), "test_size": len(test_set), "device": str(device),
                       "batch_size": BATCH_SIZE, "lr": LEARNING_RATE, "config": classifier.config,
                       "versions": package_versions()}
    return classifier


def _train_classifier_epoch(classifier: FeatureClassifier, optimizer: torch.optim.Optimizer, train_set: ImageDataset,
                            order_rng: torch.Generator, device: torch.device, task: Any,
                            deadline: float | None) -> None:
    classifier.train()
    labels = train_set.labels
    order = torch.randperm(len(train_set), generator=order_rng)
    for start in range(0, len(train_set), BATCH_SIZE):
        index = order[start : start + BATCH_SIZE]
        loss = F.cross_entropy(classifier(train_set.batch(index).to(device)), labels[index].to(device))
        if not torch.isfinite(loss):
            raise ClassifierTrainingError(f"Feature classifier loss became {loss.item()} on {train_set.info.name}.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        task.update(start + len(index), info=f"loss={loss.item():.3f}")
        if deadline is not None and time.perf_counter() > deadline:
            raise ClassifierTrainingError(
                f"Training the {train_set.info.name} feature classifier passed its time limit (max_seconds). Train "
                "on a GPU (device: cuda) or raise max_seconds; the rule is never shortened, since that would change "
                "the feature space.")


def _save(path: Path, classifier: FeatureClassifier) -> None:
    header = {"format": FORMAT, **classifier.meta}
    state = {k: v.detach().to("cpu").contiguous() for k, v in classifier.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"aebench": json.dumps(header)}))
    atomic_write_text(path.with_suffix(".json"), json.dumps(header, indent=2) + "\n")


def _load(path: Path, device: torch.device, expected: dict[str, Any]) -> FeatureClassifier | None:
    """The cached classifier at ``path``, or None when the file is unreadable or from another rule."""
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
    progress: ProgressLog = SILENT,
) -> FeatureClassifier:
    """The cached feature classifier of ``dataset``, training (and caching) it on first use.

    Args:
        dataset: A labelled dataset name (``mnist``, ``fashion_mnist``, ``fashion_mnist_mini``, ``svhn``).
        data_root: Folder with the dataset files (default ``$AEBENCH_DATA``).
        cache_dir: Where classifiers are cached (default ``$AEBENCH_CACHE/classifiers`` or
            ``~/.cache/aebench/classifiers``).
        device: Device of the returned classifier, and of training (default: CUDA when available).
        seed: Training seed; part of the cache key.
        epochs: Epochs before the gate is checked (default :data:`DEFAULT_EPOCHS`); part of the cache key.
        min_accuracy: The gate (default :data:`MIN_ACCURACY`); part of the cache key, since it decides how long
            the classifier trains.
        max_seconds: Training time limit (see :func:`train_feature_classifier`).
        retrain: Ignore a cached file and train again.
        progress: Where progress lines go while training.

    Returns:
        The classifier in eval mode with frozen parameters; ``meta`` holds its provenance.

    Raises:
        ClassifierAccuracyError: If the classifier (cached or new) is below the gate.
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
    torch_device = pick_device(device)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    expected = {"dataset": dataset, "data": data_fingerprint(dataset, data_root), "seed": seed, "epochs": epochs,
                "min_accuracy": threshold}
    path = folder / f"{dataset}-v{CLASSIFIER_VERSION}-{stable_hash(expected, 12)}.safetensors"
    classifier = None if retrain or not path.is_file() else _load(path, torch_device, expected)
    fresh = classifier is None
    if classifier is None:
        train_set = load_dataset(dataset, "train", data_root)
        test_set = load_dataset(dataset, "test", data_root)
        with torch.enable_grad():  # callers such as fd_classifier run under no_grad; training needs gradients
            classifier = train_feature_classifier(train_set, test_set, epochs=epochs, min_accuracy=threshold,
                                                  seed=seed, device=torch_device, max_seconds=max_seconds,
                                                  progress=progress)
        classifier.meta.update(expected)  # what it was trained for, the key the cache checks
        # Cached whatever its accuracy: the gate is checked on every use, so a classifier below it fails at once
        # for the next model instead of being trained again.
        _save(path, classifier)
    classifier.meta["path"] = str(path)
    accuracy = float(classifier.meta.get("test_accuracy", 0.0))
    if accuracy < threshold:
        where = "was trained" if fresh else f"is cached at {path}"
        trained = classifier.meta.get("epochs_trained", epochs)
        raise ClassifierAccuracyError(
            f"The {dataset} feature classifier {where} with test accuracy {accuracy:.4f} < the required "
            f"{threshold:.4g} after {trained} epochs (seed {seed}); its features would make fd_classifier "
            "meaningless. Check the dataset files, or set the suite's fidelity: {classifier_epochs: N} higher or "
            "{min_accuracy: X} lower (the accuracy is then recorded with the result).")
    for parameter in classifier.parameters():
        parameter.requires_grad_(False)
    return classifier.to(torch_device).eval()
