"""What every import adapter shares: the format registry, the converted-model type and the provenance record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aebench.models.base import AutoEncoder
from aebench.registry import Registry
from aebench.utils import file_sha256


class ForeignCheckpointError(ValueError):
    """A foreign checkpoint cannot be turned into an aebench model; the message says why and what to do."""


@dataclass
class Imported:
    """A converted model and its provenance (``format``, ``path``, ``sha256`` and format-specific details)."""

    model: AutoEncoder
    source: dict[str, Any]


Converter = Callable[..., Imported]
ADAPTERS: Registry[Converter] = Registry("checkpoint format")
"""Converters by format name: ``convert(source, *, model, dataset, data_root, **options) -> Imported``."""


def source_record(fmt: str, path: str | Path, weights: str | Path | None = None, **details: Any) -> dict[str, Any]:
    """The provenance of an imported checkpoint: its format, path and the SHA-256 of its weights file."""
    weights = Path(weights) if weights is not None else Path(path)
    return {"format": fmt, "path": str(path), "sha256": file_sha256(weights) if weights.is_file() else None,
            **details}


def load_torch_weights(path: Path) -> dict[str, Any]:
    """A ``torch.save``d state dict, read with ``weights_only=True``: tensors and plain containers only.

    PyTorch's restricted loader refuses any other object, so reading a foreign file never runs its code (the
    unrestricted ``torch.load`` unpickles, which aebench never does).

    Raises:
        ForeignCheckpointError: For a missing file or one that holds objects other than tensors.
    """
    import torch

    if not path.is_file():
        raise ForeignCheckpointError(f"{path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError, depending on the version
        raise ForeignCheckpointError(f"{path} is not a plain torch state dict that can be read without unpickling "
                                     f"code ({type(err).__name__}: {str(err).splitlines()[0]}).") from err
