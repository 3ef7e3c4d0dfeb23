"""Self-describing checkpoints: weights in safetensors, everything else as JSON in its header.

A checkpoint names its registry model and constructor arguments, so loading rebuilds the model
with ``create_model`` and never unpickles arbitrary objects (nanoGPT's self-describing checkpoint,
without pickle). A JSON copy of the metadata sits beside the file for people to read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from aebench.models import create_model
from aebench.models.base import AutoEncoder
from aebench.provenance import git_hash, package_versions
from aebench.utils import atomic_write, jsonable

FORMAT = "aebench-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not match its model."""


def save_checkpoint(path: str | Path, model: AutoEncoder, **meta: Any) -> Path:
    """Write ``model``'s weights and metadata (dataset, recipe, seed, epoch, ...) to ``path``.

    Returns:
        The path written. A ``.json`` copy of the metadata is written beside it.
    """
    path = Path(path)
    header = {
        "format": FORMAT,
        "model": model.registry_name,
        "model_args": jsonable(model.model_args),
        **jsonable(meta),
        "versions": package_versions(),
        "git": git_hash(),
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"aebench": json.dumps(header)}))
    atomic_write(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(header, indent=2) + "\n"))
    return path


def weights_digest(model: torch.nn.Module) -> str:
    """A short SHA-256 of a model's weights alone (names, dtypes, shapes, values), not of a file's metadata.

    Two checkpoints with the same weights have the same digest whatever their headers say, so it tells whether two
    measurements saw the same model.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored in a checkpoint's header."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist. Train one with `aebench train MODEL --dataset NAME`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("aebench")
    except Exception as err:  # safetensors raises its own error type, which moved between versions
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from err
    if raw is None:
        raise CheckpointError(f"{path} has no aebench metadata; it was not written by aebench.save_checkpoint.")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its aebench metadata is not valid JSON ({err}); the file was edited or "
                              "damaged. Retrain or restore it.") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its aebench metadata is not a JSON object; retrain or restore it.")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}; this aebench reads {FORMAT!r}.")
    for key, kind in (("model", str), ("model_args", dict)):
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"{path}: metadata key {key!r} is missing or not a {kind.__name__}; retrain it.")
    return meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> AutoEncoder:
    """Rebuild the registered model a checkpoint describes and load its weights (strictly).

    Every tensor must have the name, shape and dtype the rebuilt model expects and finite values: a file whose
    weights were converted or damaged is refused instead of evaluated.

    Raises:
        CheckpointError: If the file is unreadable or its weights do not fit the model it names.
    """
    meta = read_metadata(path)
    args = dict(meta["model_args"])
    if "image_shape" in args:
        args["image_shape"] = tuple(args["image_shape"])
    try:
        model = create_model(meta["model"], **args)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"Checkpoint {path} names model {meta['model']!r} with arguments that do not build "
                              f"it: {err}") from err
    state = load_file(str(path))
    problems = state_problems(model.state_dict(), state)
    if problems:
        raise CheckpointError(f"Checkpoint {path} does not fit model {meta['model']!r} built with "
                              f"{meta['model_args']}:\n  " + "\n  ".join(problems))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def state_problems(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], limit: int = 10) -> list[str]:
    """What is wrong with the tensors ``found`` for a model whose state dict is ``expected`` (empty when nothing)."""
    problems = [f"missing tensor {k!r}" for k in expected if k not in found]
    problems += [f"unexpected tensor {k!r}" for k in found if k not in expected]
    for name, tensor in found.items():
        want = expected.get(name)
        if want is None:
            continue
        if tuple(tensor.shape) != tuple(want.shape):
            problems.append(f"{name}: shape {tuple(tensor.shape)}, the model has {tuple(want.shape)}")
        elif tensor.dtype != want.dtype:
            problems.append(f"{name}: dtype {tensor.dtype}, the model has {want.dtype}")
        elif tensor.is_floating_point() and not torch.isfinite(tensor).all():
            problems.append(f"{name}: holds NaN or infinite values")
    return problems[:limit] + ([f"... and {len(problems) - limit} more"] if len(problems) > limit else [])


def save_optimizer(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    """Store an optimizer's tensors in safetensors and its scalars as JSON metadata (no pickle)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"param_groups": state_dict["param_groups"], "scalars": scalars}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata={"optimizer": json.dumps(meta)}))


def load_optimizer(path: str | Path, optimizer: torch.optim.Optimizer) -> None:
    """Restore what :func:`save_optimizer` wrote into ``optimizer`` (same parameters, same order)."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["optimizer"])
    tensors = load_file(str(path))
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
