"""The checkpoints of the authors' own code: Robust_GMM_DAE (NeurIPS 2022) and GMM_DAE (NeurIPS 2021).

Saseendran et al.'s training scripts save ``torch.save(nn.DataParallel(model).state_dict(), ...)``. Their networks
are aebench's trunks layer for layer (the layer lists of ``aebench.nn.networks`` follow them), so a key map is all
it takes:

- fully connected (MNIST, Fashion-MNIST, 2022 code): ``encoder.encoder.{0,2,4,6}`` → ``encoder.0.{1,3,5,7}``,
  ``encoder.fc1`` → ``encoder.1``, ``decoder.decoder_conv.{0,2,4,6}`` → ``decoder.{0,2,4,6}``, ``decoder.fc1.0``
  → ``decoder.8``; ``encoder.fc2`` (a log-variance head the code defines but never uses) is dropped;
- convolutional (SVHN, CelebA): ``encoder.encoder.K`` → ``encoder.0.K``, ``encoder.fc1`` → ``encoder.1``,
  ``decoder.fc1.0`` → ``decoder.0``, ``decoder.decoder_conv.K`` → ``decoder.(K + 3)``; ``decoder.conv1..4`` are the
  same tensors as ``decoder_conv.{0,3,6,9}`` (the modules are registered twice) and are checked equal, then dropped.

The ``module.`` prefix of DataParallel is stripped. The loss weights (λ_KS, λ_CV, λ_pair) are not in the files;
aebench estimates them as its constructor always does. The prior differs between the two code bases: means
10·e_k in Robust_GMM_DAE, 1·e_k in GMM_DAE (``code``). GMM_DAE's 1×32×32 model is a convolutional net that has no
aebench trunk, so it cannot be imported. Any key left over is an error that lists it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from aebench.adapters._base import ADAPTERS, ForeignCheckpointError, Imported, load_torch_weights, source_record
from aebench.config import resolve_training
from aebench.data import dataset_info
from aebench.models import create_model

PRIOR_SCALE = {"robust_gmm_dae": 10.0, "gmm_dae": 1.0}
"""The prior's mean distance s of each code base (official code: ``set_gmm_centers``)."""

LOSS_WEIGHTS = ("weight_ks", "weight_cv", "weight_pair")


def _fc_key(key: str) -> str | None:
    rules = ((r"encoder\.encoder\.([0246])\.(.+)", lambda m: f"encoder.0.{int(m[1]) + 1}.{m[2]}"),
             (r"encoder\.fc1\.(.+)", lambda m: f"encoder.1.{m[1]}"),
             (r"decoder\.decoder_conv\.([0246])\.(.+)", lambda m: f"decoder.{m[1]}.{m[2]}"),
             (r"decoder\.fc1\.0\.(.+)", lambda m: f"decoder.8.{m[1]}"))
    return _apply(key, rules, drop=(r"encoder\.fc2\..+",))


def _conv_key(key: str) -> str | None:
    rules = ((r"encoder\.encoder\.(\d+)\.(.+)", lambda m: f"encoder.0.{m[1]}.{m[2]}"),
             (r"encoder\.fc1\.(.+)", lambda m: f"encoder.1.{m[1]}"),
             (r"decoder\.fc1\.0\.(.+)", lambda m: f"decoder.0.{m[1]}"),
             (r"decoder\.decoder_conv\.(\d+)\.(.+)", lambda m: f"decoder.{int(m[1]) + 3}.{m[2]}"))
    return _apply(key, rules, drop=(r"decoder\.conv[1-4]\..+",))


def _apply(key: str, rules: tuple, drop: tuple[str, ...]) -> str | None:
    for pattern in drop:
        if re.fullmatch(pattern, key):
            return ""  # known and deliberately dropped
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return target(match)
    return None


def _check_duplicates(state: dict[str, torch.Tensor]) -> None:
    """The SVHN/CelebA decoders register conv1..4 twice; both copies must hold the same tensors."""
    for index, position in enumerate((0, 3, 6, 9), start=1):
        for suffix in ("weight", "bias"):
            copy, original = f"decoder.conv{index}.{suffix}", f"decoder.decoder_conv.{position}.{suffix}"
            if copy in state and original in state and not torch.equal(state[copy], state[original]):
                raise ForeignCheckpointError(f"{copy} and {original} differ, but the authors' code registers one "
                                             "module under both names: the file is not a checkpoint of that code.")


def map_state_dict(raw: dict[str, torch.Tensor], image_shape: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """The authors' state dict under aebench's names (module docstring).

    Raises:
        ForeignCheckpointError: Listing every key that has no place in aebench's network.
    """
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    _check_duplicates(state)
    rename = _fc_key if image_shape[0] == 1 else _conv_key
    mapped, unknown = {}, []
    for key, tensor in state.items():
        target = rename(key)
        if target is None:
            unknown.append(key)
        elif target:
            mapped[target] = tensor
    if unknown:
        raise ForeignCheckpointError(f"{len(unknown)} key(s) of the checkpoint have no place in aebench's "
                                     f"{'fully connected' if image_shape[0] == 1 else 'convolutional'} network: "
                                     f"{', '.join(sorted(unknown)[:12])}{' ...' if len(unknown) > 12 else ''}.")
    return mapped


@ADAPTERS.register("authors")
def convert(source: Path, *, model: str | None, dataset: str, data_root: str | None = None,
            code: str = "robust_gmm_dae") -> Imported:
    """Turn an authors' checkpoint into the aebench model ``model`` (default ``robust_gmm_dae``).

    Args:
        source: The ``.pth`` file the authors' script saved.
        model: A GMM-DAE-family model (``gmm_dae``, ``augmented_gmm_dae``, ``robust_gmm_dae``).
        dataset: The dataset it was trained on.
        data_root: Where the dataset files are (for the dataset's sizes).
        code: Which code base saved it: ``robust_gmm_dae`` (2022) or ``gmm_dae`` (2021); sets the prior.

    Raises:
        ForeignCheckpointError: For another code base, a model outside the GMM-DAE family, or keys that do not map.
    """
    if code not in PRIOR_SCALE:
        raise ForeignCheckpointError(f"code must be one of {sorted(PRIOR_SCALE)}, got {code!r}.")
    model = model or "robust_gmm_dae"
    if model not in ("gmm_dae", "augmented_gmm_dae", "robust_gmm_dae"):
        raise ForeignCheckpointError(f"The authors' checkpoints hold GMM-DAE-family models; {model!r} is not one.")
    image_shape = tuple(dataset_info(dataset).image_shape)
    if code == "gmm_dae" and image_shape[0] == 1:
        raise ForeignCheckpointError("GMM_DAE (2021) trains a convolutional net on 1×32×32 images, and aebench has "
                                     "only the fully connected trunk of the 2022 code for them: it cannot be mapped.")
    args: dict[str, Any] = dict(resolve_training(model, dataset, data_root=data_root).model_args)
    args["prior_scale"] = PRIOR_SCALE[code]
    args["image_shape"] = image_shape
    built = create_model(model, **args)
    mapped = map_state_dict(load_torch_weights(source), image_shape)
    try:
        missing, unexpected = built.load_state_dict(mapped, strict=False)
    except RuntimeError as err:  # shapes that do not fit (another latent size, another dataset)
        raise ForeignCheckpointError(f"{source} does not fit {model!r} on {dataset}: {err}") from err
    missing = [k for k in missing if k not in LOSS_WEIGHTS]
    if missing or unexpected:
        raise ForeignCheckpointError(f"The mapped checkpoint does not fit {model!r}: missing {missing}, "
                                     f"unexpected {list(unexpected)}.")
    return Imported(built.eval(), source_record("authors", source, code=code))
