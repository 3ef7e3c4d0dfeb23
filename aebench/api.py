"""``aebench.benchmark``: the suite protocol for any model object, from Python, in one call.

Any ``torch.nn.Module`` with an encoding and a decoding method (images in [0, 1], the encoding deterministic) is
wrapped into aebench's interface, its settings are validated exactly as a suite's, and it is measured with the
same code as ``aebench run``: the same images, seeds, attacks and metrics, so its rows compare with a suite's rows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from aebench.data import dataset_info
from aebench.models.base import AutoEncoder
from aebench.models.external import DelegatingAutoEncoder
from aebench.progress import SILENT, ProgressLog
from aebench.results import read_rows
from aebench.runner import run_suite
from aebench.suite import parse_suite


def wrap(module: nn.Module, image_shape: tuple[int, int, int], encode: str = "encode",
         decode: str = "decode") -> AutoEncoder:
    """A plain module seen through aebench's interface (``reconstruct`` is decode ∘ encode).

    Raises:
        ValueError: For a module without the encoding or decoding method.
    """
    if not callable(getattr(module, encode, None)):
        raise ValueError(f"{type(module).__name__} has no method {encode!r}; pass encode= with its name.")
    with torch.no_grad():
        latent_dim = int(getattr(module, encode)(torch.zeros(1, *image_shape)).shape[1])
    return DelegatingAutoEncoder(image_shape, latent_dim, module, encode, decode)


def benchmark(
    model: nn.Module,
    dataset: str,
    *,
    attacks: Sequence[str] = ("latent", "max_damage"),
    optimizer: str = "pgd",
    budgets: Sequence[float] = (1.0, 3.0, 5.0),
    n_images: int = 100,
    n_trials: int = 10,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    noise_baseline: bool = True,
    options: dict[str, Any] | None = None,
    label: str = "model",
    encode: str = "encode",
    decode: str = "decode",
    data_root: str | None = None,
    output: str | None = None,
    progress: ProgressLog = SILENT,
) -> pd.DataFrame:
    """Attack ``model`` on ``dataset`` with the suite protocol and return the tidy rows.

    Args:
        model: An aebench model, or any module with ``encode``/``decode`` (other names with ``encode=``/``decode=``).
        dataset: A dataset name (``aebench data ls``).
        attacks: Attack objectives (``latent``, ``max_damage``, ``latent_msssim``, ``max_damage_msssim``).
        optimizer: Their optimizer (``pgd``, ``lbfgs``, ``apgd``, ``ensemble``).
        budgets: L2 budgets λ.
        n_images: N images per trial.
        n_trials: T trials.
        seeds: Cell seeds (each draws its own trial images).
        device: ``auto``, ``cpu``, ``cuda``, ...
        noise_baseline: Also attack with noise of the same budget.
        options: Optimizer options.
        label: The model's name in the rows.
        encode: Name of the module's encoding method.
        decode: Name of its decoding method.
        data_root: Where the dataset files are.
        output: Keep the run folder here (default: a temporary folder, removed afterwards).
        progress: Where progress goes.

    Returns:
        One row per (measurement, metric, trial), as ``aebench run`` writes them.

    Raises:
        aebench.suite.SuiteError: For any setting a suite would reject.
        ValueError: For a module without the encoding or decoding method.
    """
    info = dataset_info(dataset)
    wrapped = model if isinstance(model, AutoEncoder) else wrap(model, tuple(info.image_shape), encode, decode)
    with tempfile.TemporaryDirectory(prefix="aebench-") as scratch:
        raw = {"name": "benchmark", "version": "1", "datasets": [dataset], "models": [{"name": label}],
               "attacks": [{"name": a, "optimizer": optimizer, "budgets": list(budgets), "options": options or {}}
                           for a in attacks],
               "noise_baseline": noise_baseline, "n_images": n_images, "n_trials": n_trials, "seeds": list(seeds),
               "device": device, "output": output or f"{scratch}/run", "cache_dir": f"{scratch}/cache"}
        if data_root is not None:
            raw["data_root"] = data_root
        suite = parse_suite(raw, "<aebench.benchmark>", instances={label: wrapped})
        summary = run_suite(suite, progress=progress)
        rows = read_rows(suite.output)
    rows.attrs["failed"] = dict(summary.failed)  # measurement → error, for the few that can fail (e.g. fidelity)
    return rows
