"""Downstream robustness (Table 3 of Saseendran et al., NeurIPS 2022): a latent classifier, clean and attacked.

Saseendran, Skubch, Falkner and Keuper, "Trading off Image Quality for Robustness is not Necessary with Regularized
Deterministic Autoencoders" (NeurIPS 2022), Table 3: an MLP is trained on the latent codes z = g(x) of the training
set; its accuracy is reported on clean test images and on images attacked with the latent-space attack (eq. 12) at
λ = 1 towards a test image of another class. The authors' code has no classifier (official-code-spec.md §7.4), so
the protocol below is aebench's choice:

1. Encode the training set once with the frozen encoder (eval mode, no latent noise). Standardise the codes with the
   training mean and standard deviation, stored in the classifier as buffers so that it takes raw codes.
2. Train an MLP D → 256 → 256 → classes (ReLU) with Adam (lr 1e-3, batch 256, 20 epochs; seeded init and batch
   order). These codes are low-dimensional, so this takes seconds on a CPU.
3. Clean accuracy: over the whole test split (``clean_accuracy``), and per trial on the attacked images
   (``clean_accuracy_trials``), so that the attacked accuracy has a like-for-like baseline.
4. Attacked accuracy: the runner's protocol (:mod:`aebench.sampling`): T trials of N test images, each attacked once
   with the latent-space attack at λ towards the next test image of another class. The runner scores the classifier
   on the images of its own latent attack at that budget, so the number belongs to the attack in the same table. A
   prediction counts as correct when MLP(g(x + δ)) is still the true label of x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aebench.data import ImageDataset
from aebench.models.base import AutoEncoder
from aebench.progress import SILENT, ProgressLog
from aebench.sampling import CellImages

__all__ = [
    "DownstreamResult",
    "LatentClassifier",
    "downstream_accuracy",
    "encode_dataset",
    "predict_labels",
    "train_latent_classifier",
    "trial_accuracies",
]


class LatentClassifier(nn.Module):
    """MLP on standardised latent codes; takes raw codes z (B, D) and returns logits (B, classes).

    Args:
        latent_dim: D.
        num_classes: Number of labels.
        hidden: Widths of the hidden layers.
    """

    def __init__(self, latent_dim: int, num_classes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)
        # Buffers, so the standardisation travels with state_dict() and .to(device).
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("std", torch.ones(latent_dim))
        self.train_accuracy: float | None = None

    def forward(self, z: Tensor) -> Tensor:
        """Logits of raw (unstandardised) codes."""
        return self.net((z - self.mean) / self.std)


@torch.no_grad()
def encode_dataset(model: AutoEncoder, dataset: ImageDataset, device: torch.device | str | None = None,
                   batch_size: int = 1000) -> Tensor:
    """Codes g(x) of every image of ``dataset``, on the CPU as float32 (N, D). The model's mode is restored."""
    device = torch.device(device) if device is not None else model.device
    was_training = model.training
    model.eval()
    try:
        codes = [model.encode(dataset.batch(slice(s, s + batch_size)).to(device)).float().cpu()
                 for s in range(0, len(dataset), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(codes)


def train_latent_classifier(
    model: AutoEncoder,
    train_set: ImageDataset,
    *,
    hidden: Sequence[int] = (256, 256),
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: ProgressLog = SILENT,
) -> LatentClassifier:
    """Train an MLP on the frozen codes of ``train_set`` (step 1–2 of the module protocol).

    Args:
        model: The autoencoder whose encoder is frozen.
        train_set: Labelled training split.
        hidden: Hidden-layer widths.
        epochs: Passes over the training codes.
        batch_size: Codes per Adam step.
        lr: Adam learning rate.
        seed: Seeds the initialisation and the batch order.
        device: Training device (default: the model's device).
        progress: Where progress goes.

    Returns:
        The classifier in eval mode on ``device``; ``train_accuracy`` holds its final accuracy on the training codes.

    Raises:
        ValueError: If the dataset has no labels or the settings are not positive.
    """
    if train_set.labels is None or train_set.info.num_classes is None:
        raise ValueError(f"{train_set.info.name} has no class labels, so there is no downstream classifier to train "
                         "(Table 3 uses labelled datasets only).")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {epochs}, {batch_size}, {lr}.")
    device = torch.device(device) if device is not None else model.device
    codes = encode_dataset(model, train_set, device)
    if not torch.isfinite(codes).all():
        raise ValueError(f"The encoder returned NaN or infinite codes on {train_set.info.name}/train.")
    labels = train_set.labels
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
        torch.manual_seed(seed)
        classifier = LatentClassifier(codes.shape[1], train_set.info.num_classes, hidden)
    classifier.mean.copy_(codes.mean(dim=0))
    # A constant code dimension (a collapsed latent) would divide by zero; leave it unscaled instead.
    std = codes.std(dim=0)
    classifier.std.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))
    classifier.to(device).train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed)
    steps = (len(codes) + batch_size - 1) // batch_size
    with progress.task("latent classifier", epochs, "epochs") as task:
        for epoch in range(epochs):
            order = torch.randperm(len(codes), generator=order_rng)
            correct, loss_sum = 0, 0.0
            for step in range(steps):
                index = order[step * batch_size : (step + 1) * batch_size]
                z, y = codes[index].to(device), labels[index].to(device)
                logits = classifier(z)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item()
                correct += int((logits.argmax(dim=1) == y).sum())
            classifier.train_accuracy = correct / len(codes)
            task.update(epoch + 1, info=f"loss={loss_sum / steps:.3f} acc={classifier.train_accuracy:.3f}")
    return classifier.eval()


@torch.no_grad()
def predict_labels(model: AutoEncoder, classifier: LatentClassifier, images: Tensor,
                   batch_size: int = 1000) -> Tensor:
    """Labels MLP(g(x)) predicted for images in [0, 1], on the CPU (int64, (B,))."""
    device = next(classifier.parameters()).device
    predictions = [classifier(model.encode(images[s : s + batch_size].to(device))).argmax(dim=1).cpu()
                   for s in range(0, images.shape[0], batch_size)]
    return torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.int64)


def trial_accuracies(model: AutoEncoder, classifier: LatentClassifier, images: Tensor, labels: Tensor,
                     n_trials: int, n_images: int) -> Tensor:
    """Accuracy per trial (T,) of images laid out trial-major, (T·N, C, H, W), as the runner's attacked batch.

    The runner can pass the ``x_adv`` of its own latent attack at λ = 1 here instead of attacking again.
    """
    if images.shape[0] != n_trials * n_images or labels.shape[0] != images.shape[0]:
        raise ValueError(f"Expected {n_trials}×{n_images} images and labels, got {images.shape[0]} images and "
                         f"{labels.shape[0]} labels.")
    correct = predict_labels(model, classifier, images) == labels.reshape(-1).cpu()
    return correct.reshape(n_trials, n_images).double().mean(dim=1)


@dataclass
class DownstreamResult:
    """Accuracies of one downstream evaluation (fractions in [0, 1]).

    Attributes:
        budget: The attack budget λ.
        clean_accuracy: Over the whole test split.
        clean_accuracy_trials: (T,) on each trial's unattacked images.
        attacked_accuracy_trials: (T,) on each trial's attacked images.
    """

    budget: float
    clean_accuracy: float
    clean_accuracy_trials: list[float]
    attacked_accuracy_trials: list[float]

    @property
    def attacked_accuracy(self) -> float:
        """Mean attacked accuracy over trials."""
        return sum(self.attacked_accuracy_trials) / len(self.attacked_accuracy_trials)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for result rows and JSON."""
        return {"budget": self.budget, "clean_accuracy": self.clean_accuracy,
                "clean_accuracy_trials": self.clean_accuracy_trials,
                "attacked_accuracy": self.attacked_accuracy,
                "attacked_accuracy_trials": self.attacked_accuracy_trials}


def downstream_accuracy(model: AutoEncoder, classifier: LatentClassifier, test_set: ImageDataset,
                        images: CellImages, attacked: Tensor, budget: float) -> DownstreamResult:
    """Clean and attacked accuracy of ``classifier`` on codes of ``model`` (step 3–4 of the module protocol).

    Args:
        model: The autoencoder (its encoder is frozen; eval mode, no latent noise).
        classifier: From :func:`train_latent_classifier` on the same model.
        test_set: Labelled test split, for the clean accuracy over the whole split.
        images: The cell's sources and labels (:func:`aebench.sampling.cell_images`).
        attacked: The latent attack's x + δ for ``images.x``, same layout.
        budget: λ of that attack (recorded with the result).

    Raises:
        ValueError: For an unlabelled test set or images that do not match.
    """
    if test_set.labels is None or images.labels is None:
        raise ValueError(f"{test_set.info.name} has no class labels, so downstream accuracy is undefined.")
    clean = predict_labels(model, classifier, test_set.batch(slice(None)))
    clean_accuracy = float((clean == test_set.labels).double().mean())
    clean_trials = trial_accuracies(model, classifier, images.x, images.labels, images.n_trials, images.n_images)
    adv_trials = trial_accuracies(model, classifier, attacked, images.labels, images.n_trials, images.n_images)
    return DownstreamResult(float(budget), clean_accuracy, clean_trials.tolist(), adv_trials.tolist())
