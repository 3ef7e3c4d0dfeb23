"""Static facts about each dataset and the ``DATASETS`` registry that holds them."""

from __future__ import annotations

from dataclasses import dataclass

from aebench.registry import Registry


@dataclass(frozen=True)
class DatasetInfo:
    """What a model, an attack or a report needs to know about a dataset without loading it.

    Attributes:
        name: Registry name, e.g. ``"mnist"``.
        image_shape: ``(C, H, W)`` of the images as :func:`aebench.data.load_dataset` returns them (after resizing).
        num_classes: Number of label classes, or ``None`` for an unlabelled dataset (CelebA).
        latent_dim: Latent size D used by the paper's models on this dataset (DESIGN.md, "Latent size and prior").
        num_components: Number of GMM prior components K.
        description: One line for listings.
        license: License or terms of use of the images.
    """

    name: str
    image_shape: tuple[int, int, int]
    num_classes: int | None
    latent_dim: int
    num_components: int
    description: str
    license: str


DATASETS: Registry[DatasetInfo] = Registry("dataset")

_MNIST_LICENSE = "CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)"
_FMNIST_LICENSE = "MIT (Copyright (c) 2017 Zalando SE, https://github.com/zalandoresearch/fashion-mnist)"

for _info in (
    DatasetInfo("mnist", (1, 32, 32), 10, 10, 10,
                "MNIST handwritten digits, 60k train / 10k test, 28x28 resized to 32x32 (PIL bilinear).",
                _MNIST_LICENSE),
    DatasetInfo("fashion_mnist", (1, 32, 32), 10, 10, 10,
                "Fashion-MNIST Zalando article images, 60k train / 10k test, 28x28 resized to 32x32 (PIL bilinear).",
                _FMNIST_LICENSE),
    DatasetInfo("fashion_mnist_mini", (1, 32, 32), 10, 10, 10,
                "Embedded Fashion-MNIST subset (first 600/100 images per class of train/test), no download needed.",
                _FMNIST_LICENSE),
    DatasetInfo("svhn", (3, 32, 32), 10, 100, 10,
                "SVHN cropped digits (format 2), 73,257 train / 26,032 test, 32x32 RGB; label 10 mapped to 0.",
                "Non-commercial use only (Netzer et al. 2011, http://ufldl.stanford.edu/housenumbers/)"),
    DatasetInfo("celeba", (3, 64, 64), None, 64, 20,
                "CelebA aligned faces, official partition (162,770 train / 19,962 test), center-crop 140, resize 64.",
                "Non-commercial research use only (CelebA agreement, MMLAB CUHK)"),
):
    DATASETS.add(_info.name, _info)


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of a registered dataset.

    Args:
        name: A dataset name such as ``"mnist"``.

    Raises:
        aebench.registry.UnknownNameError: If ``name`` is not registered; the message lists close matches.
    """
    return DATASETS[name]
