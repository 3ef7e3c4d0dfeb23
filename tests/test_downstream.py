"""Downstream classifier (Table 3): training on frozen codes, clean accuracy, accuracy under the latent attack."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from aebench.data import ImageDataset, load_dataset
from aebench.data._info import DatasetInfo
from aebench.downstream import (
    LatentClassifier,
    downstream_accuracy,
    encode_dataset,
    train_latent_classifier,
    trial_accuracies,
)
from aebench.models.base import AutoEncoder
from aebench.sampling import attack_generator, cell_images
from tests.helpers import build_model

BUDGETS = (0.0, 0.3, 0.6, 1.0, 2.0)


class _Identity(AutoEncoder):
    """encode = flatten: the downstream classifier sees the pixels themselves."""

    def __init__(self) -> None:
        super().__init__((1, 4, 4), 16)

    def encode(self, x):  # noqa: D102
        return x.flatten(1)

    def decode(self, z):  # noqa: D102
        return z.reshape(-1, *self.image_shape).clamp(0, 1)

    def loss(self, x):  # noqa: D102
        return {"loss": (self.reconstruct(x) - x).pow(2).mean()}

    def sample_latent(self, n, generator=None):  # noqa: D102
        return torch.rand(n, 16, generator=generator)


def _toy_split(split: str, n: int, seed: int, labelled: bool = True) -> ImageDataset:
    """Two classes at 0.5 ∓ 0.15 per pixel (class means 1.2 apart in L2) with ±0.05 uniform noise."""
    info = DatasetInfo("toy", (1, 4, 4), 2 if labelled else None, 16, 2, "two separable blobs", "none")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = 0.35 + 0.3 * labels.view(-1, 1, 1, 1).float() + 0.1 * (torch.rand(n, 1, 4, 4, generator=g) - 0.5)
    images = (x * 255).round().clamp(0, 255).to(torch.uint8)
    return ImageDataset(info, split, images, labels if labelled else None)


def _exact_latent_attack(model, x, *, attack, budget, optimizer, target, generator, **options):
    """The optimum of eq. 12 for an identity encoder: move straight towards x_t by at most λ.

    The segment from x to x_t lies in [0, 1]^d (both ends do), so the box constraint never binds.
    """
    assert attack == "latent"
    step = target - x
    norm = step.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    x_adv = x + step * torch.clamp(budget / norm, max=1.0)
    return SimpleNamespace(x_adv=x_adv, objective=(x_adv - target).flatten(1).norm(dim=1), trace=None)


def _evaluate(model, classifier, test, budget, n_images, n_trials, seed=0, optimizer=None):
    """The runner's protocol: the cell's images, attacked exactly (identity encoder) or by a real optimizer."""
    images = cell_images(test, n_images, n_trials, seed)
    if budget == 0:
        attacked = images.x
    elif optimizer is None:
        attacked = _exact_latent_attack(model, images.x, attack="latent", budget=budget, optimizer=None,
                                        target=images.target, generator=None).x_adv
    else:
        from aebench.attacks.batched import attack_in_chunks

        attacked = attack_in_chunks(model, images.x, images.target, attack="latent", optimizer=optimizer,
                                    budget=budget, options={}, generator=attack_generator(seed, "latent", optimizer,
                                                                                            budget),
                                    chunk=1000, device=torch.device("cpu")).x_adv
    return downstream_accuracy(model, classifier, test, images, attacked, budget).as_dict()


@pytest.fixture(scope="module")
def toy():
    model = _Identity()
    train, test = _toy_split("train", 400, 0), _toy_split("test", 200, 1)
    classifier = train_latent_classifier(model, train, epochs=10)
    return model, classifier, test


def test_clean_accuracy_near_perfect(toy) -> None:
    model, classifier, test = toy
    result = _evaluate(model, classifier, test, 0.0, 50, 3)
    assert result["clean_accuracy"] >= 0.99
    assert all(a >= 0.98 for a in result["clean_accuracy_trials"])
    assert result["attacked_accuracy_trials"] == result["clean_accuracy_trials"]
    assert classifier.train_accuracy >= 0.99


def test_attacked_accuracy_falls_with_budget(toy) -> None:
    model, classifier, test = toy
    results = [_evaluate(model, classifier, test, b, 50, 3) for b in BUDGETS]
    accuracy = [r["attacked_accuracy"] for r in results]
    assert results[0]["attacked_accuracy_trials"] == results[0]["clean_accuracy_trials"]  # λ = 0: unchanged
    assert accuracy[1] >= 0.98  # 0.3 is half the distance to the decision boundary
    assert all(b <= a for a, b in zip(accuracy, accuracy[1:], strict=False))
    assert accuracy[-2] <= 0.05 and accuracy[-1] == 0.0  # past the midpoint (0.6) towards the other class
    # Same trial images at every budget: the clean baseline does not move.
    assert all(r["clean_accuracy_trials"] == results[0]["clean_accuracy_trials"] for r in results)


def test_real_latent_attack(toy) -> None:
    model, classifier, test = toy
    kwargs = {"n_images": 10, "n_trials": 2, "seed": 1, "optimizer": "pgd"}
    none = _evaluate(model, classifier, test, 0.0, **kwargs)
    strong = _evaluate(model, classifier, test, 1.0, **kwargs)
    assert none["attacked_accuracy"] >= 0.95
    assert strong["attacked_accuracy"] <= 0.2
    again = _evaluate(model, classifier, test, 1.0, **kwargs)
    assert again == strong  # seeded


def test_classifier_standardises_and_is_deterministic() -> None:
    model, train = _Identity(), _toy_split("train", 200, 0)
    first = train_latent_classifier(model, train, epochs=2, seed=3)
    second = train_latent_classifier(model, train, epochs=2, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    codes = encode_dataset(model, train)
    torch.testing.assert_close(first.mean, codes.mean(dim=0))
    torch.testing.assert_close(first.std, codes.std(dim=0))
    assert isinstance(first, LatentClassifier) and not first.training


def test_trial_accuracies_layout(toy) -> None:
    model, classifier, test = toy
    x, y = test.batch(slice(0, 6)), test.labels[:6].clone()
    y[:3] = 1 - y[:3]  # the first trial's labels are all wrong
    acc = trial_accuracies(model, classifier, x, y, n_trials=2, n_images=3)
    assert acc.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="2×4"):
        trial_accuracies(model, classifier, x, y, n_trials=2, n_images=4)


def test_errors() -> None:
    model = _Identity()
    with pytest.raises(ValueError, match="no class labels"):
        train_latent_classifier(model, _toy_split("train", 20, 0, labelled=False))
    classifier = LatentClassifier(16, 2)
    unlabelled = _toy_split("test", 20, 0, labelled=False)
    with pytest.raises(ValueError, match="no class labels"):
        downstream_accuracy(model, classifier, unlabelled, cell_images(unlabelled, 4, 1, 0), unlabelled.batch(
            slice(0, 4)), 1.0)
    with pytest.raises(ValueError, match="exceeds"):
        cell_images(_toy_split("test", 20, 0), 50, 1, 0)


def test_registered_model_smoke() -> None:
    """A real (untrained) VAE on a slice of the embedded data, with the real attack, runs end to end."""
    train = load_dataset("fashion_mnist_mini", "train")
    test = load_dataset("fashion_mnist_mini", "test")
    small = ImageDataset(train.info, "train", train.images[:500], train.labels[:500])
    model = build_model("vae").eval()
    classifier = train_latent_classifier(model, small, epochs=1)
    result = _evaluate(model, classifier, test, 1.0, 4, 2, optimizer="pgd")
    assert 0.0 <= result["clean_accuracy"] <= 1.0
    assert len(result["attacked_accuracy_trials"]) == 2
