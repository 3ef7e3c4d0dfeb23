"""Datasets: MNIST, Fashion-MNIST, SVHN and CelebA from their official files, plus an embedded Fashion-MNIST subset.

Every loader returns an :class:`ImageDataset` with uint8 images already preprocessed as in the authors' code
(MNIST/Fashion-MNIST resized 28→32 with PIL bilinear, SVHN as is, CelebA center-crop 140 then resize 64) and
``batch()`` giving float32 in [0, 1].

Where files are looked for (:mod:`aebench.data.paths`): the ``data_root`` argument, else ``$AEBENCH_DATA``, else
``~/.cache/aebench/data``; inside it ``<root>/<name>/`` then ``<root>/``; Fashion-MNIST also in
``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``). ``fashion_mnist_mini`` ships
inside the package and needs no files. Missing or corrupt files raise :class:`DataError` with the paths and a fix;
``aebench data download NAME`` fetches and checksums the official files where a direct URL exists.

Example:
    >>> from aebench.data import load_dataset
    >>> test = load_dataset("fashion_mnist_mini", "test")
    >>> test.batch(slice(0, 8)).shape
    torch.Size([8, 1, 32, 32])
"""

from __future__ import annotations

from aebench.data._info import DATASETS, DatasetInfo, dataset_info
from aebench.data.dataset import ImageDataset
from aebench.data.errors import DataError
from aebench.data.loaders import (
    clear_cache,
    data_fingerprint,
    load_dataset,
    locate,
    missing_files_message,
    split_size,
    splits_of,
)
from aebench.data.paths import resolve_root

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "ImageDataset",
    "clear_cache",
    "data_fingerprint",
    "dataset_info",
    "load_dataset",
    "locate",
    "missing_files_message",
    "resolve_root",
    "split_size",
    "splits_of",
]
