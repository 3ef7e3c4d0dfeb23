"""Any code base: the network from its ``module:factory`` function, its weights from a state-dict file.

The network is built by ``factory(**factory_args)`` (importing that module runs its code, the user's explicit
choice) and wrapped as aebench's ``external`` model, whose ``encode``/``decode`` call the network's own methods
(names configurable). The weights are a plain state dict, read as safetensors or with ``torch.load``'s
``weights_only`` loader (tensors only, nothing unpickled); every key must fit the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from aebench.adapters._base import ADAPTERS, ForeignCheckpointError, Imported, load_torch_weights, source_record
from aebench.data import dataset_info
from aebench.models import create_model


@ADAPTERS.register("state_dict")
def convert(source: Path, *, model: str | None, dataset: str, data_root: str | None = None,
            factory: str | None = None, factory_args: dict[str, Any] | None = None, encode: str = "encode",
            decode: str = "decode", latent_dim: int | None = None, prefix: str = "") -> Imported:
    """Build ``factory(**factory_args)``, load the weights at ``source`` into it, and wrap it as ``external``.

    Args:
        source: A ``.safetensors`` or ``torch.save`` state-dict file.
        model: ``external`` (or None).
        dataset: The dataset it reads.
        data_root: Unused (the image shape comes from the dataset's facts).
        factory: ``package.module:function`` that builds the network.
        factory_args: Its keyword arguments.
        encode: The network's encoding method.
        decode: Its decoding method.
        latent_dim: Size of its codes (default: measured by encoding one image).
        prefix: A prefix to strip from every key (``module.`` for a DataParallel file).

    Raises:
        ForeignCheckpointError: Without a factory, or for weights that do not fit the network.
    """
    if not factory:
        raise ForeignCheckpointError("format state_dict needs factory: 'package.module:function' that builds the "
                                     "network the weights belong to.")
    if model not in (None, "external"):
        raise ForeignCheckpointError(f"A state_dict import becomes the 'external' model, not {model!r}.")
    image_shape = tuple(dataset_info(dataset).image_shape)
    state = load_file(str(source)) if source.suffix == ".safetensors" else load_torch_weights(source)
    state = {k.removeprefix(prefix): v for k, v in state.items()}
    probe = create_model("external", image_shape=image_shape, latent_dim=latent_dim or 1, factory=factory,
                         factory_args=factory_args or {}, encode_method=encode, decode_method=decode)
    try:
        probe.net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ForeignCheckpointError(f"The weights in {source} do not fit the network of {factory!r}: {err}") from err
    if latent_dim is None:
        import torch

        with torch.no_grad():
            latent_dim = int(probe.encode(torch.zeros(1, *image_shape)).shape[1])
        probe = create_model("external", image_shape=image_shape, latent_dim=latent_dim, factory=factory,
                             factory_args=factory_args or {}, encode_method=encode, decode_method=decode)
        probe.net.load_state_dict(state, strict=True)
    return Imported(probe.eval(), source_record("state_dict", source, factory=factory))
