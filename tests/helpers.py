"""Shared helpers for the tests (tiny models and datasets, no downloads)."""

from __future__ import annotations

import inspect

from aebench.model import MODELS, AutoEncoder
from aebench.models import create_model, load_plugins

# Small, dataset-like arguments offered to every model constructor that accepts them.
TINY_ARGS = {"latent_dim": 8, "num_components": 4, "dataset_size": 1000, "batch_size": 8}


def build_model(name: str, image_shape: tuple[int, int, int] = (1, 32, 32), **extra) -> AutoEncoder:
    """Build a registered model with small dataset-derived arguments."""
    load_plugins()
    accepted = inspect.signature(MODELS[name]).parameters
    args = {k: v for k, v in TINY_ARGS.items() if k in accepted}
    return create_model(name, image_shape=image_shape, **args, **extra)
