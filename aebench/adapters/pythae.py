"""pythae model folders: ``model_config.json`` and ``model.pt`` (a dict with ``model_state_dict``).

Chadebec et al., "Pythae: Unifying Generative Autoencoders in Python" (NeurIPS 2022). A model built with pythae's
default networks becomes aebench's ``pythae_mlp`` (the same modules under the same names, so the weights load as
they are); ``encode`` is the encoder's ``embedding``, the posterior mean of a VAE. A model with custom networks
keeps them in ``encoder.pkl``/``decoder.pkl``, pickles whose loading runs code: aebench reads them only when asked
to (``allow_pickle: true``), and such a model is evaluated in memory but cannot be written as an aebench
checkpoint. pythae itself is never imported.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from aebench.adapters._base import ADAPTERS, ForeignCheckpointError, Imported, load_torch_weights, source_record
from aebench.data import dataset_info
from aebench.models import create_model
from aebench.models.base import AutoEncoder

VARIATIONAL = ("VAE", "BetaVAE", "BetaTCVAE", "IWAE", "MSSSIM_VAE", "DisentangledBetaVAE", "FactorVAE", "InfoVAE",
               "VAMP", "VAE_LinNF", "VAE_IAF", "CIWAE", "MIWAE", "PIWAE", "SVAE", "PoincareVAE", "HVAE", "RHVAE")
"""pythae model names whose default encoder has a log-variance head (the others: AE-style, embedding only)."""


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "model_config.json"
    if not folder.is_dir():
        raise ForeignCheckpointError(f"{folder} is not a folder; a pythae model is a folder with model_config.json "
                                     "and model.pt (what pythae's model.save(dir) writes).")
    if not path.is_file():
        raise ForeignCheckpointError(f"{folder} has no model_config.json; is it a pythae model folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ForeignCheckpointError(f"{path} is not valid JSON ({err}).") from err


class PickledNetworks(AutoEncoder):
    """pythae custom networks restored from their pickles (in memory only; opt-in, see the module docstring)."""

    description = "pythae model with custom networks (unpickled on request)"
    paper = "Chadebec et al., Pythae, NeurIPS 2022"
    trainable = False

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, encoder: nn.Module,
                 decoder: nn.Module) -> None:
        super().__init__(image_shape, latent_dim)
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x: Tensor) -> Tensor:
        """The ``embedding`` of pythae's encoder output."""
        return self.encoder(x)["embedding"]

    def decode(self, z: Tensor) -> Tensor:
        """The ``reconstruction`` of pythae's decoder output."""
        return self.decoder(z)["reconstruction"].reshape(z.shape[0], *self.image_shape)

    def loss(self, x: Tensor) -> dict[str, Tensor]:
        """Not available: trained by pythae."""
        raise NotImplementedError("A pythae model with custom networks is trained by pythae; aebench evaluates it.")

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """N(0, I), pythae's default sampler."""
        return torch.randn(n, self.latent_dim, generator=generator)


def _unpickle(path: Path) -> nn.Module:
    try:
        import dill as loader  # pythae writes these files with dill
    except ImportError:
        loader = pickle
    with open(path, "rb") as handle:
        return loader.load(handle)


@ADAPTERS.register("pythae")
def convert(source: Path, *, model: str | None, dataset: str, data_root: str | None = None,
            allow_pickle: bool = False) -> Imported:
    """Turn a pythae model folder into ``pythae_mlp`` (default networks) or, on request, its unpickled networks.

    Raises:
        ForeignCheckpointError: For a folder that is not a pythae model, weights that do not fit, custom networks
            without ``allow_pickle``, or an input size that is not the dataset's.
    """
    config = _config(source)
    weights = load_torch_weights(source / "model.pt")
    if not isinstance(weights, dict) or "model_state_dict" not in weights:
        raise ForeignCheckpointError(f"{source / 'model.pt'} has no 'model_state_dict' (keys: "
                                     f"{sorted(weights) if isinstance(weights, dict) else type(weights).__name__}).")
    state = weights["model_state_dict"]
    image_shape = tuple(int(s) for s in config.get("input_dim") or ())
    latent_dim = int(config.get("latent_dim", 10))
    expected = tuple(dataset_info(dataset).image_shape)
    if image_shape != expected:
        raise ForeignCheckpointError(f"The pythae model reads images of shape {image_shape}, {dataset} has "
                                     f"{expected}; it was trained on other data.")
    name = str(config.get("name", "")).removesuffix("Config")
    record = source_record("pythae", source, weights=source / "model.pt", pythae_model=name)
    defaults = config.get("uses_default_encoder", True) and config.get("uses_default_decoder", True)
    if not defaults:
        if not allow_pickle:
            raise ForeignCheckpointError(
                f"{source} has custom networks (encoder.pkl / decoder.pkl). Loading them unpickles code, so aebench "
                "does it only when asked: give the checkpoint allow_pickle: true (a suite) or --allow-pickle, or "
                "re-create the networks in code and use format state_dict with their factory.")
        networks = {part: _unpickle(source / f"{part}.pkl") for part in ("encoder", "decoder")}
        built: AutoEncoder = PickledNetworks(image_shape, latent_dim, networks["encoder"], networks["decoder"])
        record["unpickled"] = True
    else:
        if model not in (None, "pythae_mlp"):
            raise ForeignCheckpointError(f"A pythae model with default networks becomes 'pythae_mlp', not {model!r}.")
        built = create_model("pythae_mlp", image_shape=image_shape, latent_dim=latent_dim,
                             variational=name in VARIATIONAL or "encoder.log_var.weight" in state)
    try:
        built.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ForeignCheckpointError(f"The weights in {source / 'model.pt'} do not fit pythae's default "
                                     f"networks: {err}") from err
    return Imported(built.eval(), record)
