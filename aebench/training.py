"""Training: one readable loop shared by every registered model.

Adam on ``model.loss(x)["loss"]`` with the recipe's settings, a rich progress bar showing the loss
terms, a checkpoint after every finished epoch (so an interrupted run resumes where it stopped),
and a sample grid at the end. Each epoch reseeds the RNGs from (seed, epoch), so a resumed run
draws exactly the batches and noise an uninterrupted one would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aebench.checkpoint import load_optimizer, read_metadata, save_checkpoint, save_optimizer
from aebench.config import TrainingConfig, differences
from aebench.data import ImageDataset, load_dataset
from aebench.images import save_image_grid
from aebench.metrics.reconstruction import reconstruction_mse
from aebench.models import create_model
from aebench.models.base import AutoEncoder
from aebench.progress import SILENT, ProgressLog
from aebench.recipes import TrainingSettings
from aebench.utils import atomic_write_text, pick_device

CHECKPOINT_NAME = "checkpoint.safetensors"
OPTIMIZER_PATTERN = "optimizer-e{epoch}.safetensors"  # one per finished epoch; the last two are kept


class TrainingDivergedError(RuntimeError):
    """A loss term became NaN or infinite."""


@dataclass
class TrainResult:
    """What a training run leaves behind."""

    model: AutoEncoder
    run_dir: Path
    checkpoint: Path
    samples: Path | None
    test_mse: float | None
    history: list[dict[str, float]] = field(default_factory=list)


def _set_lr(optimizer: torch.optim.Optimizer, settings: TrainingSettings, epoch: int) -> None:
    steps = 0 if settings.lr_step_epochs is None else epoch // settings.lr_step_epochs
    for group in optimizer.param_groups:
        group["lr"] = settings.lr * settings.lr_gamma**steps


def _check_finite(terms: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(
                f"Training diverged at epoch {epoch + 1}, step {step + 1}: loss term {name!r} is {value.item()}. "
                "Lower the learning rate or check the data; the last finished epoch's checkpoint is kept."
            )


def train(
    config: TrainingConfig,
    *,
    run_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: ProgressLog = SILENT,
) -> TrainResult:
    """Train the model ``config`` describes and return it with its checkpoint and test MSE.

    Args:
        config: The resolved configuration (:func:`aebench.config.resolve_training`); nothing else decides the
            weights.
        run_dir: Where checkpoints and samples go (default ``runs/<model>-<dataset>-s<seed>``). A run directory
            that holds a checkpoint of exactly this configuration is resumed.
        data_root: Folder with the dataset files (default: ``$AEBENCH_DATA``).
        device: "cpu", "cuda", ... (default: CUDA when available).
        progress: Where progress lines go (a line per epoch, and heartbeats within long epochs).

    Raises:
        TrainingDivergedError: If a loss term becomes NaN/inf.
        ValueError: If ``run_dir`` holds a checkpoint of another configuration (the message lists every
            difference, the number of epochs and the code fingerprint included).
    """
    settings = config.training
    torch_device = pick_device(device)
    train_set = load_dataset(config.dataset, "train", data_root)
    steps_per_epoch = len(train_set) // settings.batch_size  # drop_last, as the authors' loaders
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {settings.batch_size} exceeds the {len(train_set)} training images of "
                         f"{config.dataset}.")
    torch.manual_seed(config.seed)
    model = create_model(config.model, **_constructor_args(config.model_args)).to(torch_device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    run_dir = Path(run_dir or Path("runs") / f"{config.model}-{config.dataset}-s{config.seed}")
    checkpoint_path = run_dir / CHECKPOINT_NAME
    meta = {"dataset": config.dataset, "seed": config.seed, "config": config.as_dict()}
    start_epoch = _resume(model, optimizer, run_dir, config, progress)

    # Epochs past the checkpoint (a crash after writing the history) are dropped: they will be trained again.
    history = [h for h in _read_history(run_dir) if h["epoch"] <= start_epoch]
    label = f"{config.model} on {config.dataset}"
    for epoch in range(start_epoch, settings.epochs):
        with progress.task(f"{label}, epoch {epoch + 1}/{settings.epochs}", steps_per_epoch) as task:
            record = _train_epoch(model, optimizer, settings, train_set, torch_device, config.seed, epoch,
                                  steps_per_epoch, task)
        history.append(record)
        progress.print(f"{label} epoch {epoch + 1}/{settings.epochs}: "
                       + " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
        _save_epoch(run_dir, model, optimizer, history, {**meta, "epoch": epoch + 1, "epochs": settings.epochs})

    model.eval()
    test_mse = reconstruction_mse(model, load_dataset(config.dataset, "test", data_root), torch_device)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    with torch.no_grad():
        samples = save_image_grid(model.sample(64, generator), run_dir / "samples.png", columns=8)
    return TrainResult(model, run_dir, checkpoint_path, samples, test_mse, history)


def _constructor_args(model_args: dict[str, Any]) -> dict[str, Any]:
    """JSON-stored arguments as the constructors expect them (the image shape is a tuple)."""
    args = dict(model_args)
    if "image_shape" in args:
        args["image_shape"] = tuple(args["image_shape"])
    return args


def _save_epoch(run_dir: Path, model: AutoEncoder, optimizer: torch.optim.Optimizer,
                history: list[dict[str, float]], meta: dict[str, Any]) -> None:
    """Persist a finished epoch; the checkpoint is written last, so it only exists once the rest does."""
    epoch = meta["epoch"]
    save_optimizer(run_dir / OPTIMIZER_PATTERN.format(epoch=epoch), optimizer)
    atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    save_checkpoint(run_dir / CHECKPOINT_NAME, model, **meta)
    (run_dir / OPTIMIZER_PATTERN.format(epoch=epoch - 2)).unlink(missing_ok=True)  # keep the last two


def _train_epoch(model: AutoEncoder, optimizer: torch.optim.Optimizer, settings: TrainingSettings,
                 train_set: ImageDataset, device: torch.device, seed: int, epoch: int, steps: int,
                 task: Any) -> dict[str, float]:
    model.train()
    _set_lr(optimizer, settings, epoch)
    # Reseeding per epoch makes a resumed run identical to an uninterrupted one.
    torch.manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    sums: dict[str, float] = {}
    batch_size = settings.batch_size
    for step in range(steps):
        x = train_set.batch(order[step * batch_size : (step + 1) * batch_size]).to(device)
        terms = model.loss(x)
        _check_finite(terms, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        task.update(step + 1, info=" ".join(f"{k}={v / (step + 1):.4g}" for k, v in sums.items()))
    return {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}}


def _resume(model: AutoEncoder, optimizer: torch.optim.Optimizer, run_dir: Path, config: TrainingConfig,
            progress: ProgressLog) -> int:
    """Load the last finished epoch from ``run_dir`` if it holds exactly ``config``; return the next epoch."""
    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.exists():
        return 0
    saved = read_metadata(checkpoint)
    saved_config = saved.get("config") or {}
    mine = config.as_dict()
    compared = ("model", "dataset", "data", "seed", "model_args", "training", "code")
    changed = differences({k: saved_config.get(k) for k in compared}, {k: mine[k] for k in compared})
    if changed:
        raise ValueError(f"{run_dir} holds a run of another configuration; resuming it would mix two runs:\n  "
                         + "\n  ".join(changed) + "\nPass another --run-dir or delete the old run.")
    epoch = int(saved.get("epoch", 0))
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(checkpoint)))
    optimizer_file = run_dir / OPTIMIZER_PATTERN.format(epoch=epoch)
    if optimizer_file.exists():
        load_optimizer(optimizer_file, optimizer)
    else:
        progress.print(f"No optimizer state for epoch {epoch} in {run_dir}; Adam restarts from zero moments.")
    progress.print(f"Resuming {run_dir} after epoch {epoch}.")
    return epoch


def _read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["TrainResult", "TrainingDivergedError", "train"]
