"""Any network from another code base, evaluated under aebench's protocol: built by its own factory function.

The model is ``factory(**factory_args)``, a ``module:function`` the user names (importing it runs that module's
code, which is the user's explicit choice), with the methods named ``encode`` and ``decode`` (configurable). Its
weights come from an aebench checkpoint, so loading never unpickles anything. aebench cannot train it (its
objective lives in the other code base), and it has no prior to sample from unless the factory's module provides
``sample_latent``.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor, nn

from aebench.models.base import MODELS, AutoEncoder


def build_factory(factory: str, factory_args: dict[str, Any] | None = None) -> nn.Module:
    """Call ``module:function`` with ``factory_args``.

    Raises:
        ValueError: For a name that is not ``module:function``, or a function that does not return an nn.Module.
        ImportError: If the module cannot be imported.
    """
    module_name, _, function = factory.partition(":")
    if not module_name or not function:
        raise ValueError(f"factory must look like 'package.module:function', got {factory!r}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"Cannot import {module_name!r} for factory {factory!r}: {err}. Install the code base the "
                          "weights come from, or put it on PYTHONPATH.") from err
    if not hasattr(module, function):
        raise ValueError(f"{module_name!r} has no {function!r} (factory {factory!r}).")
    net = getattr(module, function)(**(factory_args or {}))
    if not isinstance(net, nn.Module):
        raise ValueError(f"factory {factory!r} returned a {type(net).__name__}, not a torch.nn.Module.")
    return net


class DelegatingAutoEncoder(AutoEncoder):
    """aebench's interface on a network that already encodes and decodes: calls its methods by name.

    Args:
        image_shape: (C, H, W) of its images (in [0, 1]).
        latent_dim: Size of its codes.
        net: The network.
        encode_method: Name of its encoding method (deterministic: the posterior mean for a VAE).
        decode_method: Name of its decoding method.
    """

    trainable = False  # its objective lives in its own code base

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, net: nn.Module,
                 encode_method: str = "encode", decode_method: str = "decode") -> None:
        super().__init__(image_shape, latent_dim)
        for name in (encode_method, decode_method):
            if not callable(getattr(net, name, None)):
                raise ValueError(f"{type(net).__name__} has no method {name!r}; name its encoding and decoding "
                                 "methods (encode_method / decode_method, or encode= / decode=).")
        self.net = net
        self.encode_method, self.decode_method = encode_method, decode_method

    def encode(self, x: Tensor) -> Tensor:
        """The network's own encoding."""
        return getattr(self.net, self.encode_method)(x)

    def decode(self, z: Tensor) -> Tensor:
        """The network's own decoding."""
        return getattr(self.net, self.decode_method)(z)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Not available: the network is trained by its own code base."""
        raise NotImplementedError("This model is trained by its own code base; aebench only evaluates it.")

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The network's ``sample_latent`` if it has one."""
        sampler = getattr(self.net, "sample_latent", None)
        if sampler is None:
            raise NotImplementedError("This network has no sample_latent, so it has no prior to sample (fidelity "
                                      "needs one).")
        return sampler(n, generator)


@MODELS.register("external")
class ExternalAutoEncoder(DelegatingAutoEncoder):
    """A foreign network built by its own factory, wrapped into aebench's interface.

    Args:
        image_shape: (C, H, W) of its images (in [0, 1]).
        latent_dim: Size of its codes.
        factory: ``package.module:function`` building the network.
        factory_args: Keyword arguments of the factory.
        encode_method: Name of the network's encoding method.
        decode_method: Name of its decoding method.
    """

    description = "a network from another code base, built by its own factory"
    paper = "(the paper of the imported model)"

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, factory: str,
                 factory_args: dict[str, Any] | None = None, encode_method: str = "encode",
                 decode_method: str = "decode") -> None:
        super().__init__(image_shape, latent_dim, build_factory(factory, factory_args), encode_method, decode_method)
