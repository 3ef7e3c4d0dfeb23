"""The one interface every autoencoder in aebench implements.

Inputs and outputs are float tensors in [0, 1] with shape (B, C, H, W), so attack budgets are always
in pixel units (as RobustBench does). ``encode`` is deterministic (the posterior mean for VAE-family
models), because the attacks of Saseendran et al. (NeurIPS 2022, eq. 12 and 13) act on g(x).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from aebench.registry import Registry


class AutoEncoder(nn.Module, ABC):
    """Base class of every registered model.

    Subclasses set the class attributes ``description`` (one line) and ``paper`` (citation), take
    ``image_shape`` and ``latent_dim`` as constructor arguments, and implement the four methods below.

    Args:
        image_shape: (C, H, W) of the images the model reads and writes.
        latent_dim: Size D of the latent code.
    """

    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        if len(image_shape) != 3 or any(int(s) <= 0 for s in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape!r}.")
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        # Filled by create_model so that a checkpoint can rebuild the model without pickling it.
        self.registry_name: str = type(self).__name__
        self.model_args: dict[str, Any] = {}

    @abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """Deterministic, differentiable code z = g(x) of shape (B, D)."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """Images f(z) in [0, 1] of shape (B, C, H, W)."""

    @abstractmethod
    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Training objective on a batch: a scalar ``"loss"`` plus its named (scalar) terms."""

    @abstractmethod
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` codes from the model's prior, shape (n, D)."""

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` prior samples into images in [0, 1]."""
        z = self.sample_latent(n, generator)
        return self.decode(z.to(self.device))

    def reconstruct(self, x: Tensor) -> Tensor:
        """f(g(x)), the clean reconstruction used by every metric."""
        return self.decode(self.encode(x))

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (CPU for a parameter-less model)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")


MODELS: Registry[type[AutoEncoder]] = Registry("model")
"""Every registered model class, keyed by its lower_snake name: the built-in ones (imported with
:mod:`aebench.models`) and those of installed packages (entry-point group ``aebench.models``, loaded on first use)."""
