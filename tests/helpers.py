"""Shared helpers for the tests (tiny models and datasets, no downloads)."""

from __future__ import annotations

import gzip
import inspect
import struct
from pathlib import Path

import numpy as np
import torch

from aebench.models import create_model
from aebench.models.base import MODELS, AutoEncoder

# Small, dataset-like arguments offered to every model constructor that accepts them.
TINY_ARGS = {"latent_dim": 8, "num_components": 4, "dataset_size": 1000, "batch_size": 8}


class TinyForeignNet(torch.nn.Module):
    """A network of "another code base": encode/decode under other names, and a prior of its own."""

    def __init__(self, pixels: int = 1024, latent_dim: int = 8) -> None:
        super().__init__()
        self.down = torch.nn.Linear(pixels, latent_dim)
        self.up = torch.nn.Linear(latent_dim, pixels)
        self.shape = (1, 32, 32) if pixels == 1024 else (3, 32, 32)

    def embed(self, x):
        return self.down(x.flatten(1))

    def generate(self, z):
        return torch.sigmoid(self.up(z)).view(-1, *self.shape)

    def sample_latent(self, n, generator=None):
        return torch.randn(n, self.down.out_features, generator=generator)


def tiny_foreign_net(pixels: int = 1024, latent_dim: int = 8) -> TinyForeignNet:
    """The factory an ``external`` model names in the tests."""
    return TinyForeignNet(pixels, latent_dim)


# What the ``external`` model needs beyond the dataset's arguments: the factory of a tiny foreign network.
EXTERNAL_ARGS = {"factory": "tests.helpers:tiny_foreign_net", "encode_method": "embed", "decode_method": "generate"}


def build_model(name: str, image_shape: tuple[int, int, int] = (1, 32, 32), **extra) -> AutoEncoder:
    """Build a registered model with small dataset-derived arguments."""
    accepted = inspect.signature(MODELS[name]).parameters
    args = {k: v for k, v in TINY_ARGS.items() if k in accepted}
    if name == "external":
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        args = {**args, **EXTERNAL_ARGS, "factory_args": {"pixels": pixels, "latent_dim": args["latent_dim"]}}
    return create_model(name, image_shape=image_shape, **{**args, **extra})


def idx_bytes(arr: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file (written independently of the reader under test)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_idx(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> tuple[Path, Path]:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        out.append(path)
    return out[0], out[1]
