"""``load_dataset``: find a dataset's files, read and check them, preprocess, and cache the result in-process.

The in-process cache is keyed by the resolved file paths plus their size and modification time, so a second
``load_dataset`` of the same split is instant while a replaced file is read again.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from aebench.data import celeba
from aebench.data._info import DATASETS, DatasetInfo
from aebench.data.dataset import ImageDataset
from aebench.data.errors import DataError
from aebench.data.idx import read_idx_pair
from aebench.data.paths import FileSpec, find_files, missing_message, search
from aebench.data.svhn import read_svhn_mat
from aebench.data.transforms import resize_stack

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
MINI_RESOURCE = "embedded/fashion_mnist_mini.npz"
_IDX_DATASETS = ("mnist", "fashion_mnist")


def splits_of(name: str) -> tuple[str, ...]:
    """The split names ``load_dataset`` accepts for ``name`` (CelebA also has its official ``"valid"`` split)."""
    return ("train", "valid", "test") if name == "celeba" else ("train", "test")


def required_files(name: str, split: str) -> list[FileSpec]:
    """The files (or folders) ``split`` of ``name`` needs; empty for the embedded dataset."""
    if name in _IDX_DATASETS:
        return [FileSpec(f, gz_ok=True) for f in IDX_FILES[split]]
    if name == "svhn":
        return [FileSpec(SVHN_FILES[split])]
    if name == "celeba":
        return [FileSpec(celeba.PARTITION_FILE), FileSpec(celeba.IMAGE_DIR, is_dir=True)]
    return []


def _all_files(name: str) -> list[FileSpec]:
    return [spec for split in splits_of(name) for spec in required_files(name, split)]


def _check(name: str, split: str) -> DatasetInfo:
    info = DATASETS[name]  # unknown name: UnknownNameError with "did you mean"
    if split not in splits_of(name):
        raise DataError(f"Unknown split {split!r} for dataset {name!r}; use one of {', '.join(splits_of(name))}.")
    return info


def locate(name: str, split: str = "train", data_root: str | Path | None = None) -> list[Path]:
    """Paths of the files ``split`` of ``name`` would be loaded from.

    Raises:
        DataError: If they are missing; the message names every folder searched and how to get the files.
    """
    _check(name, split)
    specs = required_files(name, split)
    if not specs:
        return [mini_path()]
    return find_files(name, split, specs, data_root, _all_files(name))


def missing_files_message(name: str, data_root: str | Path | None = None,
                          splits: tuple[str, ...] = ("train", "test")) -> str | None:
    """Why ``name`` cannot be loaded from ``data_root`` (one paragraph per split), or None when all files exist.

    Only checks that the files exist (cheap enough for suite validation); corruption shows up at load time.
    """
    for split in splits:
        _check(name, split)
    missing = []
    for split in splits:
        specs = required_files(name, split)
        found, partial = search(name, specs, data_root, _all_files(name))
        if specs and found is None:
            missing.append((split, specs, partial))
    return missing_message(name, missing, data_root) if missing else None


def load_dataset(name: str, split: str = "train", data_root: str | Path | None = None) -> ImageDataset:
    """Load one split of a registered dataset into memory.

    Args:
        name: A name of ``DATASETS``: ``mnist``, ``fashion_mnist``, ``fashion_mnist_mini``, ``svhn``, ``celeba``.
        split: ``"train"`` or ``"test"`` (CelebA also ``"valid"``).
        data_root: Folder with the dataset files; default ``$AEBENCH_DATA``, else ``~/.cache/aebench/data``
            (see :mod:`aebench.data.paths` for where inside it files are looked for).

    Returns:
        An :class:`ImageDataset` with uint8 images of shape ``(N, *info.image_shape)``.

    Raises:
        aebench.registry.UnknownNameError: For an unknown dataset name (with close matches).
        DataError: For an unknown split, missing files (listing every path searched), or a truncated or corrupt
            file (naming it).
    """
    info = _check(name, split)
    paths = locate(name, split, data_root)
    stamps = tuple(_stamp(p) for p in paths)
    images, labels = _load_cached(name, split, tuple(str(p.resolve()) for p in paths), stamps)
    return ImageDataset(info=info, split=split, images=images, labels=labels)


def mini_path() -> Path:
    """Path of the embedded ``fashion_mnist_mini.npz``."""
    return Path(str(resources.files("aebench.data").joinpath(MINI_RESOURCE)))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=6)
def _load_cached(name: str, split: str, paths: tuple[str, ...],
                 stamps: tuple[tuple[int, int], ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    # ``stamps`` is unused in the body on purpose: it is part of the cache key so edited files are re-read.
    del stamps
    files = [Path(p) for p in paths]
    if name in _IDX_DATASETS:
        images, labels = read_idx_pair(files[0], files[1])
        return _to_tensors(_resize_28_to_32(images), labels)
    if name == "fashion_mnist_mini":
        return _to_tensors(*_read_mini(files[0], split))
    if name == "svhn":
        images, labels = read_svhn_mat(files[0])
        return _to_tensors(images, labels)
    if name == "celeba":
        return torch.from_numpy(celeba.load_celeba(files[0].parent, split)), None
    raise DataError(f"Dataset {name!r} is registered but has no loader.")


def _resize_28_to_32(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) → (N, 1, 32, 32), PIL bilinear as the authors' offline preprocessing."""
    return resize_stack(images, (32, 32))[:, None]


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.astype(np.int64))


def _read_mini(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of the embedded subset (28×28 as stored) and resize it like the full dataset."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise DataError(f"The embedded dataset {path} is unreadable ({err}); reinstall aebench, or regenerate it "
                        "with scripts/make_fashion_mnist_mini.py.") from err
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"The embedded dataset {path} has unexpected arrays ({split}_images {images.shape} "
                        f"{images.dtype}, {split}_labels {labels.shape}); regenerate it.")
    return _resize_28_to_32(images), labels


def split_size(name: str, split: str, data_root: str | Path | None = None) -> int:
    """Number of images in ``split`` of ``name``, read from file headers where the format has them (cheap).

    Raises:
        DataError: If the files are missing or unreadable.
    """
    paths = locate(name, split, data_root)
    try:
        if name in _IDX_DATASETS:
            opener = gzip.open if paths[0].suffix == ".gz" else open
            with opener(paths[0], "rb") as handle:  # IDX header: magic, then N as big-endian int32
                header = handle.read(8)
            return int.from_bytes(header[4:8], "big")
        if name == "svhn":
            import scipy.io

            shapes = {var: shape for var, shape, _ in scipy.io.whosmat(str(paths[0]))}
            return int(shapes["X"][3])
        if name == "celeba":
            return len(celeba.read_partition(paths[0], split))
    except (OSError, KeyError, IndexError, ValueError, EOFError) as err:
        raise DataError(f"Cannot read the size of {name}/{split} from {paths[0]} ({err}); check the file.") from err
    return len(load_dataset(name, split, data_root))


def data_fingerprint(name: str, data_root: str | Path | None = None) -> str:
    """A short hash of the files a dataset is read from (all splits), so results are tied to the data they used.

    Files are hashed by content; a folder (CelebA's images) by its listing of names and sizes, which is cheap and
    changes when images are added, removed or replaced by files of another size.
    """
    paths = [p for split in splits_of(name) for p in locate(name, split, data_root)]
    return _fingerprint(tuple(str(p.resolve()) for p in paths), tuple(_stamp(p) for p in paths))


@functools.lru_cache(maxsize=16)
def _fingerprint(paths: tuple[str, ...], stamps: tuple[tuple[int, int], ...]) -> str:
    del stamps  # part of the cache key only, so an edited file is hashed again
    digest = hashlib.sha256()
    for text in sorted(set(paths)):
        path = Path(text)
        digest.update(path.name.encode())
        if path.is_dir():
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                digest.update(f"{entry.name}:{entry.stat().st_size};".encode())
        else:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def clear_cache() -> None:
    """Forget every dataset loaded in this process (frees memory; the next load reads the files again)."""
    _load_cached.cache_clear()
    _fingerprint.cache_clear()
