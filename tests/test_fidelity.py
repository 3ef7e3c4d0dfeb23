"""Fidelity metrics: the Fréchet distance against closed forms and scipy, the feature classifier, Inception errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from aebench.data import load_dataset
from aebench.fidelity import (
    ClassifierAccuracyError,
    ClassifierTrainingError,
    FeatureClassifier,
    InceptionUnavailableError,
    fd_classifier,
    feature_statistics,
    fid_inception,
    frechet_distance,
    get_feature_classifier,
    require_inception,
)
from aebench.fidelity import classifier as fc
from aebench.fidelity import classifier_distance as fd_module
from aebench.fidelity import inception as inception_module
from aebench.models.base import AutoEncoder


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    """Independent reference: the textbook formula with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_diagonal_gaussians_match_closed_form() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    closed = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2))
    value = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert value == pytest.approx(closed, abs=1e-4)
    assert _scipy_frechet(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, abs=1e-4)


def test_full_covariances_match_scipy_sqrtm() -> None:
    rng = np.random.default_rng(1)
    for dim in (2, 10, 40):
        s1, s2 = _random_spd(rng, dim), _random_spd(rng, dim)
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), abs=1e-4)


def test_accepts_tensors_and_singular_covariances() -> None:
    rng = np.random.default_rng(2)
    # 5 samples of 20 features: rank-deficient covariances, where a general sqrtm goes complex.
    f1, f2 = rng.normal(size=(5, 20)), rng.normal(size=(5, 20))
    mu1, s1 = feature_statistics(torch.from_numpy(f1).float())
    mu2, s2 = feature_statistics(f2)
    value = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), mu2, s2)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-3)


def test_identical_sets_give_zero() -> None:
    features = np.random.default_rng(3).normal(size=(500, 32))
    mu, sigma = feature_statistics(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_grows_monotonically_with_shift() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=(400, 8))
    mu0, s0 = feature_statistics(base)
    values = []
    for shift in (0.0, 0.1, 0.5, 1.0, 2.0):
        mu, s = feature_statistics(base + shift)
        values.append(frechet_distance(mu, s, mu0, s0))
    assert values[0] == pytest.approx(0.0, abs=1e-8)
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    # A pure shift of every feature by c changes only the mean term: 8·c².
    assert values[-1] == pytest.approx(8 * 4.0, rel=1e-6)


def test_feature_statistics_match_numpy() -> None:
    features = np.random.default_rng(5).normal(size=(50, 4))
    mu, sigma = feature_statistics(features)
    np.testing.assert_allclose(mu, features.mean(axis=0))
    np.testing.assert_allclose(sigma, np.cov(features, rowvar=False))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="2-D"):
        feature_statistics(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="feature spaces differ"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


# ----------------------------------------------------------------------------------------------- feature classifier


class _DataSampler(AutoEncoder):
    """A 'generator' that returns real test images (or noise), so fd_classifier has a known ordering."""

    def __init__(self, images: torch.Tensor, noise: float = 0.0) -> None:
        super().__init__((1, 32, 32), 2)
        self.images = images
        self.noise = noise

    def encode(self, x):  # noqa: D102
        return x.flatten(1)[:, :2]

    def decode(self, z):  # noqa: D102
        return torch.zeros(z.shape[0], *self.image_shape)

    def loss(self, x):  # noqa: D102
        return {"loss": x.sum() * 0}

    def sample_latent(self, n, generator=None):  # noqa: D102
        return torch.zeros(n, 2)

    def sample(self, n, generator=None):  # noqa: D102
        index = torch.randint(0, self.images.shape[0], (n,), generator=generator)
        images = self.images[index]
        if self.noise:
            images = images + self.noise * torch.randn(images.shape, generator=generator)
        return images.clamp(0, 1)


@pytest.fixture(scope="module")
def mini_classifier(tmp_path_factory) -> FeatureClassifier:
    """A quickly trained classifier on the embedded mini set (one epoch: the test does not need full accuracy)."""
    cache = tmp_path_factory.mktemp("classifiers")
    return get_feature_classifier("fashion_mnist_mini", cache_dir=cache, device="cpu", epochs=1, min_accuracy=0.5)


def test_classifier_cached_with_metadata(mini_classifier: FeatureClassifier) -> None:
    path = mini_classifier.meta["path"]
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    assert meta["dataset"] == "fashion_mnist_mini" and meta["seed"] == 0 and meta["epochs"] == 1
    assert meta["test_accuracy"] >= 0.5 and "torch" in meta["versions"] and len(meta["data"]) == 16
    again = get_feature_classifier("fashion_mnist_mini", cache_dir=Path(path).parent, device="cpu", epochs=1,
                                   min_accuracy=0.5)
    assert again.meta["train_seconds"] == mini_classifier.meta["train_seconds"]  # loaded, not retrained
    for a, b in zip(again.state_dict().values(), mini_classifier.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # A file whose header disagrees with what is asked for (copied or renamed) is not trusted.
    expected = {k: meta[k] for k in ("dataset", "data", "seed", "epochs", "min_accuracy")}
    assert fc._load(Path(path), torch.device("cpu"), {**expected, "dataset": "mnist"}) is None
    assert fc._load(Path(path), torch.device("cpu"), {**expected, "data": "0" * 16}) is None
    assert fc._load(Path(path), torch.device("cpu"), expected) is not None


def test_classifier_below_the_gate_raises_and_fails_fast_the_next_time(mini_classifier, tmp_path, monkeypatch):
    calls = []

    def fake_train(*args, **kwargs):
        calls.append(kwargs)
        return copy.deepcopy(mini_classifier)

    monkeypatch.setattr(fc, "train_feature_classifier", fake_train)
    for _ in range(2):
        with pytest.raises(ClassifierAccuracyError, match="test accuracy"):
            get_feature_classifier("fashion_mnist_mini", cache_dir=tmp_path, epochs=1, min_accuracy=0.999)
    assert len(calls) == 1 and calls[0]["min_accuracy"] == 0.999  # the second call read the cached verdict


def test_training_goes_on_until_the_gate_and_extending_changes_nothing_trained_before() -> None:
    train = load_dataset("fashion_mnist_mini", "train")
    test = load_dataset("fashion_mnist_mini", "test")
    small = type(train)(train.info, "train", train.images[:512], train.labels[:512])
    fixed = fc.train_feature_classifier(small, test, epochs=2, device="cpu")
    assert fixed.meta["epochs_trained"] == 2 and len(fixed.meta["test_accuracy_per_epoch"]) == 1
    # An unreachable gate trains to the cap (3 × epochs), checking the accuracy after every epoch from `epochs` on.
    capped = fc.train_feature_classifier(small, test, epochs=1, min_accuracy=1.0, device="cpu")
    assert capped.meta["epochs_trained"] == 3 and len(capped.meta["test_accuracy_per_epoch"]) == 3
    # A gate met at once stops after `epochs`, with the weights of a plain run of that length.
    met = fc.train_feature_classifier(small, test, epochs=2, min_accuracy=0.01, device="cpu")
    assert met.meta["epochs_trained"] == 2
    for a, b in zip(fixed.state_dict().values(), met.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ClassifierTrainingError, match="max_seconds"):
        fc.train_feature_classifier(small, test, epochs=1, device="cpu", max_seconds=0.0)


def test_unlabelled_dataset_has_no_classifier(tmp_path) -> None:
    with pytest.raises(ClassifierTrainingError, match="fid_inception"):
        get_feature_classifier("celeba", cache_dir=tmp_path)


def test_fd_classifier_orders_generators(mini_classifier: FeatureClassifier) -> None:
    test = load_dataset("fashion_mnist_mini", "test")
    real = _DataSampler(test.batch(slice(None)))
    noisy = _DataSampler(test.batch(slice(None)), noise=0.3)
    blank = _DataSampler(torch.zeros(10, 1, 32, 32))
    kwargs = {"n_samples": 1000, "classifier": mini_classifier, "batch_size": 300}
    values = [fd_classifier(m, "fashion_mnist_mini", **kwargs) for m in (real, noisy, blank)]
    assert values[0] < values[1] < values[2]
    assert fd_classifier(noisy, "fashion_mnist_mini", **kwargs) == values[1]  # seeded samples


def test_fd_classifier_rejects_wrong_shape(mini_classifier: FeatureClassifier) -> None:
    wrong = _DataSampler(torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match="shape"):
        fd_classifier(wrong, "fashion_mnist_mini", n_samples=10, classifier=mini_classifier)


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "threshold"), [("fashion_mnist_mini", 0.80), ("fashion_mnist", 0.90)])
def test_default_classifier_reaches_threshold(dataset: str, threshold: float, tmp_path) -> None:
    classifier = get_feature_classifier(dataset, cache_dir=tmp_path, device="cpu")
    assert classifier.meta["test_accuracy"] >= threshold


# ------------------------------------------------------------------------------------------------------ Inception


def test_inception_without_weights_says_where_to_put_them(monkeypatch) -> None:
    monkeypatch.delenv("AEBENCH_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(InceptionUnavailableError, match=r"fidelity: \{inception_weights: PATH\}.*TorchScript"):
        require_inception()
    with pytest.raises(InceptionUnavailableError, match="does not exist"):
        fid_inception(_DataSampler(torch.zeros(2, 1, 32, 32)), "fashion_mnist_mini", "/nonexistent/inception.pth")


def test_inception_without_torch_fidelity_says_what_to_install(monkeypatch, tmp_path) -> None:
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    weights.write_bytes(b"stand-in")
    real_import = inception_module.importlib.import_module

    def missing(name, *args):
        if name in ("torch_fidelity", "torchvision"):
            raise ModuleNotFoundError(f"No module named '{name}'")
        return real_import(name, *args)

    monkeypatch.setattr(inception_module.importlib, "import_module", missing)
    with pytest.raises(InceptionUnavailableError, match="pip install torch-fidelity"):
        require_inception(weights)
    monkeypatch.setenv("AEBENCH_INCEPTION_WEIGHTS", str(weights))
    with pytest.raises(InceptionUnavailableError, match="pip install torch-fidelity"):
        fid_inception(_DataSampler(torch.zeros(2, 1, 32, 32)), "fashion_mnist_mini")


def test_inception_with_broken_torchvision_explains(monkeypatch, tmp_path) -> None:
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"stand-in")

    def broken(name, *args):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(inception_module.importlib, "import_module", broken)
    with pytest.raises(InceptionUnavailableError, match="TorchScript Inception feature extractor"):
        require_inception(weights)


def test_fd_classifier_trains_a_missing_classifier_with_gradients_enabled(tmp_path, monkeypatch):
    """Regression: fd_classifier runs under no_grad, and used to train the classifier without gradients."""
    from tests.helpers import build_model

    class Trained(Exception):
        pass

    def spy(*args, **kwargs):
        assert torch.is_grad_enabled()
        raise Trained

    monkeypatch.setattr(fc, "train_feature_classifier", spy)  # get_feature_classifier looks it up here
    with pytest.raises(Trained):
        fd_module.fd_classifier(build_model("gmm_dae"), "fashion_mnist_mini", 16, cache_dir=tmp_path)


class _TinyFeatures(torch.nn.Module):
    """A stand-in for an Inception feature extractor: 4×4 average pooling of three channels, 48 features."""

    def __init__(self) -> None:
        super().__init__()
        self.num_features = 48

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(images.float(), 4).flatten(1)


def test_fid_with_a_torchscript_feature_extractor_needs_no_torchvision(tmp_path, monkeypatch):
    from aebench.fidelity.frechet import feature_statistics, frechet_distance

    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(_TinyFeatures()), str(path))

    def no_backend():  # torch-fidelity and torchvision must not even be looked for
        raise AssertionError("looked for torch-fidelity")

    monkeypatch.setattr(inception_module, "_import_backend", no_backend)
    test = load_dataset("fashion_mnist_mini", "test")
    noisy = _DataSampler(test.batch(slice(None)), noise=0.2)
    value = fid_inception(noisy, "fashion_mnist_mini", path, n_samples=500, batch_size=250)
    # The same distance from the features directly, with the same samples (same seeded generator).
    generator = torch.Generator().manual_seed(0)
    fake = torch.cat([noisy.sample(250, generator).clamp(0, 1) for _ in range(2)])
    real = test.batch(slice(None))

    def features(images):
        return _TinyFeatures()(images.repeat(1, 3, 1, 1)).double().numpy()

    expected = frechet_distance(*feature_statistics(features(fake)), *feature_statistics(features(real)))
    assert value == pytest.approx(expected, rel=1e-3, abs=1e-6)
    assert value > fid_inception(_DataSampler(real), "fashion_mnist_mini", path, n_samples=500, batch_size=250)
