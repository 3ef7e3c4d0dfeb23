"""Generation fidelity: how close decoded prior samples are to the test set, as a Fréchet distance.

- :func:`fd_classifier` (default, offline): the Fréchet distance (Heusel et al., NeurIPS 2017) in the penultimate
  features of a small CNN trained once per dataset with a fixed seed, reported as ``fd_classifier``.
- :func:`fid_inception`: FID proper, with Inception-v3 weights the user supplies (optional torch-fidelity extra).

The two are different metrics: a Fréchet distance depends strongly on its feature space (Kynkäänniemi et al.,
"The Role of ImageNet Classes in Fréchet Inception Distance", ICLR 2023), so ``fd_classifier`` is never called FID
and its numbers are compared only with each other.

Example:
    >>> from aebench.fidelity import fd_classifier
    >>> fd_classifier(model, "fashion_mnist_mini", n_samples=2000)  # doctest: +SKIP
"""

from __future__ import annotations

from aebench.fidelity.classifier import (
    CLASSIFIER_VERSION,
    DEFAULT_EPOCHS,
    MIN_ACCURACY,
    ClassifierAccuracyError,
    ClassifierTrainingError,
    FeatureClassifier,
    default_cache_dir,
    evaluate_accuracy,
    get_feature_classifier,
    train_feature_classifier,
)
from aebench.fidelity.classifier_distance import classifier_features, fd_classifier
from aebench.fidelity.frechet import feature_statistics, frechet_distance
from aebench.fidelity.inception import INCEPTION_FILES, InceptionUnavailableError, fid_inception, require_inception

__all__ = [
    "CLASSIFIER_VERSION",
    "DEFAULT_EPOCHS",
    "INCEPTION_FILES",
    "MIN_ACCURACY",
    "ClassifierAccuracyError",
    "ClassifierTrainingError",
    "FeatureClassifier",
    "InceptionUnavailableError",
    "classifier_features",
    "default_cache_dir",
    "evaluate_accuracy",
    "fd_classifier",
    "feature_statistics",
    "fid_inception",
    "frechet_distance",
    "get_feature_classifier",
    "require_inception",
    "train_feature_classifier",
]
