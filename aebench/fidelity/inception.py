"""FID (Heusel et al., NeurIPS 2017) with Inception-v3 features, for users who supply the network.

The authors of Saseendran et al. (NeurIPS 2022) computed FID with pytorch-fid. aebench computes it with torchmetrics'
``FrechetInceptionDistance``, which accepts any feature module, so nothing is ever downloaded. The suite key
``fidelity: {inception_weights: PATH}`` names one of:

- a **TorchScript** feature extractor (``torch.jit.save`` of a module that maps float images in [0, 1], (B, 3, H, W),
  to (B, F) features and resizes them itself, e.g. an Inception-v3 pool3 network exported where torchvision works):
  this route needs neither torchvision nor torch-fidelity; a ``num_features`` attribute, if present, gives F;
- the published FID Inception state dict (``pt_inception-2015-12-05-6726825d.pth`` of pytorch-fid or
  ``weights-inception-2015-12-05-6726825d.pth`` of torch-fidelity), which runs through torch-fidelity's port of
  the network and so needs ``pip install torch-fidelity`` with a torchvision that imports beside your torch (on a
  CPU-only torch wheel it may not: prefer the TorchScript route there).

Anything missing raises :class:`InceptionUnavailableError` saying which route works; there is no silent fallback to
:func:`aebench.fidelity.fd_classifier`, which measures something else (Kynkäänniemi et al., ICLR 2023).

Protocol: ``n_samples`` (default 10,000) decoded prior samples against the whole test split; grayscale images are
repeated to three channels, as pytorch-fid does.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aebench.data import load_dataset
from aebench.models.base import AutoEncoder

__all__ = ["INCEPTION_FILES", "InceptionUnavailableError", "fid_inception", "require_inception"]

INCEPTION_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
"""Names of the published FID Inception weight files (pytorch-fid's and torch-fidelity's copies)."""

WEIGHTS_ENV = "AEBENCH_INCEPTION_WEIGHTS"

_WHERE = (
    "Give the suite key fidelity: {inception_weights: PATH} (or set $" + WEIGHTS_ENV + "): PATH is either a "
    "TorchScript Inception feature extractor (torch.jit.save of a module mapping (B, 3, H, W) images in [0, 1] to "
    "features; needs no torchvision) or one of " + " / ".join(INCEPTION_FILES) + " (pytorch-fid / torch-fidelity "
    "releases; needs torch-fidelity and a working torchvision)."
)


class InceptionUnavailableError(RuntimeError):
    """Inception FID cannot run: torch-fidelity/torchvision missing or the weights file not supplied."""


def _import_backend() -> None:
    """Import torch-fidelity and torchvision, turning every failure into an actionable message."""
    for module, hint in (("torchvision", "torchvision"), ("torch_fidelity", "torch-fidelity")):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise InceptionUnavailableError(
                f"fid_inception with the published Inception weights needs {hint}, which is not installed ({err}). "
                "Either pip install torch-fidelity (it pulls torchvision, which must import beside your torch), or "
                "give fidelity: {inception_weights: ...} a TorchScript feature extractor instead, which needs "
                "neither. fd_classifier is a different metric and must not be reported as FID.") from err
        except Exception as err:  # a torchvision built for another torch fails with RuntimeError at import
            raise InceptionUnavailableError(
                f"{module} is installed but does not import ({type(err).__name__}: {err}): usually a torchvision built "
                "for another torch. Use a TorchScript Inception feature extractor as fidelity: {inception_weights: "
                "...} instead: that route needs no torchvision.") from err


def _resolve_weights(weights_path: str | Path | None) -> Path:
    raw = weights_path if weights_path is not None else os.environ.get(WEIGHTS_ENV)
    if not raw:
        raise InceptionUnavailableError(f"fid_inception needs the Inception weights file and none was given. {_WHERE}")
    path = Path(raw).expanduser()
    if not path.is_file():
        raise InceptionUnavailableError(f"Inception weights file {path} does not exist. {_WHERE}")
    return path


def load_torchscript(path: Path) -> torch.nn.Module | None:
    """The TorchScript module at ``path``, or None when the file is not a TorchScript archive."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        return None
    return module.eval()


def require_inception(weights_path: str | Path | None = None) -> Path:
    """Check that Inception FID can run without a download, and return the weights file.

    The file is checked first, so a user without it learns that before installing anything; a TorchScript file
    needs nothing else.

    Raises:
        InceptionUnavailableError: With what to install or where to put the file.
    """
    path = _resolve_weights(weights_path)
    if load_torchscript(path) is None:
        _import_backend()
    return path


def _three_channels(images: Tensor) -> Tensor:
    # Inception expects RGB; pytorch-fid repeats a grayscale channel three times.
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


@torch.no_grad()
def fid_inception(
    model: AutoEncoder,
    dataset: str,
    weights_path: str | Path | None = None,
    n_samples: int = 10000,
    *,
    data_root: str | Path | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    batch_size: int = 200,
    **metric_options: Any,
) -> float:
    """FID between ``n_samples`` decoded prior samples and the test split of ``dataset``.

    Args:
        model: The autoencoder; sampled in eval mode (its mode is restored afterwards).
        dataset: Dataset the model was trained on; its test split is the reference.
        weights_path: The Inception weights file (default ``$AEBENCH_INCEPTION_WEIGHTS``).
        n_samples: Number of generated images.
        data_root: Folder with the dataset files.
        device: Device for sampling and Inception (default: the model's device).
        seed: Seeds the CPU generator of the prior samples.
        batch_size: Images per Inception batch.
        **metric_options: Passed to torchmetrics ``FrechetInceptionDistance`` (e.g. ``antialias=False``).

    Returns:
        The FID (lower is better).

    Raises:
        InceptionUnavailableError: If torch-fidelity/torchvision or the weights are missing.
    """
    path = require_inception(weights_path)
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch_device = torch.device(device) if device is not None else model.device
    scripted = load_torchscript(path)
    if scripted is not None:  # a feature module: torchmetrics passes it the float images in [0, 1] as they are
        metric = FrechetInceptionDistance(feature=scripted, normalize=True, **metric_options).to(torch_device)
    else:
        metric = FrechetInceptionDistance(feature=2048, normalize=True, feature_extractor_weights_path=str(path),
                                          **metric_options).to(torch_device)
    test_set = load_dataset(dataset, "test", data_root)
    for start in range(0, len(test_set), batch_size):
        metric.update(_three_channels(test_set.batch(slice(start, start + batch_size)).to(torch_device)), real=True)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, n_samples, batch_size):
            images = model.sample(min(batch_size, n_samples - start), generator).to(torch_device).clamp(0.0, 1.0)
            metric.update(_three_channels(images), real=False)
    finally:
        model.train(was_training)
    return float(metric.compute())
