"""The in-memory dataset object every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aebench.data._info import DatasetInfo
from aebench.data.errors import DataError


@dataclass
class ImageDataset:
    """One split of a dataset, held in memory as uint8 (4× smaller than float32).

    Loads are cached in-process, so two datasets loaded from the same files share their tensors: treat
    ``images`` and ``labels`` as read-only (``batch`` returns fresh float tensors, which are safe to modify).

    Attributes:
        info: The dataset's :class:`DatasetInfo`.
        split: ``"train"`` or ``"test"`` (CelebA also ``"valid"``).
        images: uint8 tensor (N, C, H, W), already resized to ``info.image_shape``.
        labels: int64 tensor (N,), or None for an unlabelled dataset.
    """

    info: DatasetInfo
    split: str
    images: torch.Tensor
    labels: torch.Tensor | None

    def __post_init__(self) -> None:
        """Check dtypes and shapes."""
        # A loader bug caught here is far cheaper than a model silently trained on transposed images.
        if self.images.dtype != torch.uint8 or tuple(self.images.shape[1:]) != tuple(self.info.image_shape):
            raise DataError(f"{self.info.name}/{self.split}: images must be uint8 (N, {self.info.image_shape}), "
                            f"got {self.images.dtype} {tuple(self.images.shape)}.")
        if self.labels is not None:
            if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.images),):
                raise DataError(f"{self.info.name}/{self.split}: labels must be int64 ({len(self.images)},), got "
                                f"{self.labels.dtype} {tuple(self.labels.shape)}.")

    def __len__(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    def batch(self, index: torch.Tensor | slice) -> torch.Tensor:
        """Images at ``index`` (a slice or an index tensor) as float32 in [0, 1], shape (B, C, H, W)."""
        return self.images[index].to(torch.float32).div_(255.0)

    def __repr__(self) -> str:
        """Short summary (the tensors themselves are too large to print)."""
        return (f"ImageDataset(name={self.info.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.info.image_shape)})")
