"""Training: one readable loop shared by every registered model.

Adam on ``model.loss(x)["loss"]`` with the recipe's settings, a rich progress bar showing the loss
terms, a checkpoint after every finished epoch (so an interrupted run resumes where it stopped),
and a sample grid at the end. Each epoch reseeds the RNGs from (seed, epoch), so a resumed run
draws exactly the batches and noise an uninterrupted one would.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from aebench.checkpoint import atomic_write, load_optimizer, read_metadata, save_checkpoint, save_optimizer
from aebench.data import ImageDataset, load_dataset
from aebench.images import save_image_grid
from aebench.model import MODELS, AutoEncoder
from aebench.models import create_model, load_plugins
from aebench.recipes import Recipe, load_recipe

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


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def dataset_model_args(model: str, train_set: ImageDataset, batch_size: int) -> dict[str, Any]:
    """Constructor arguments a dataset provides, limited to those the model's constructor accepts.

    Image shape, latent size and number of GMM modes come from the dataset (DESIGN.md); the training
    set size and batch size are offered to models whose objectives need them (β-TCVAE's estimator,
    loss weights estimated at the batch size).
    """
    load_plugins()
    offered = {
        "image_shape": tuple(train_set.info.image_shape),
        "latent_dim": train_set.info.latent_dim,
        "num_components": train_set.info.num_components,
        "dataset_size": len(train_set),
        "batch_size": batch_size,
    }
    params = inspect.signature(MODELS[model]).parameters
    return {k: v for k, v in offered.items() if k in params}


def _set_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, epoch: int) -> None:
    settings = recipe.training
    steps = 0 if settings.lr_step_epochs is None else epoch // settings.lr_step_epochs
    for group in optimizer.param_groups:
        group["lr"] = settings.lr * settings.lr_gamma**steps


@torch.no_grad()
def reconstruction_mse(model: AutoEncoder, dataset: ImageDataset, device: torch.device, batch_size: int = 500) -> float:
    """Mean squared error of f(g(x)) over a whole split, in eval mode (no latent noise)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        x = dataset.batch(slice(start, start + batch_size)).to(device)
        total += torch.nn.functional.mse_loss(model.reconstruct(x), x, reduction="sum").item()
        count += x.numel()
    model.train(was_training)
    return total / count


def _check_finite(terms: dict[str, torch.Tensor], epoch: int, step: int) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise TrainingDivergedError(
                f"Training diverged at epoch {epoch + 1}, step {step + 1}: loss term {name!r} is {value.item()}. "
                "Lower the learning rate or check the data; the last finished epoch's checkpoint is kept."
            )


def train(
    model_name: str,
    dataset: str,
    *,
    recipe_path: str | Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str | None = None,
    run_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    model_overrides: dict[str, Any] | None = None,
    training_overrides: dict[str, Any] | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model_name`` on ``dataset`` and return the model, its checkpoint and test MSE.

    Args:
        model_name: A registered model.
        dataset: A dataset name (see ``aebench data ls``).
        recipe_path: A recipe file; by default ``baselines/<model_name>.yaml`` if it exists.
        epochs: Override the recipe's epoch count.
        batch_size: Override the recipe's batch size.
        lr: Override the recipe's learning rate.
        seed: Seeds initialisation, batch order and all training noise.
        device: "cpu", "cuda", ... (default: CUDA when available).
        run_dir: Where checkpoints and samples go (default ``runs/<model>-<dataset>-s<seed>``).
            A run directory that holds a checkpoint of the same configuration is resumed.
        data_root: Folder with the dataset files (default: ``$AEBENCH_DATA``).
        model_overrides: Constructor arguments that replace the recipe's.
        training_overrides: Training settings (epochs, lr, ...) that replace the recipe's.
        console: Where progress and messages go.
        progress: Show a progress bar.

    Raises:
        TrainingDivergedError: If a loss term becomes NaN/inf.
        ValueError: If a resumable checkpoint in ``run_dir`` has a different configuration.
    """
    console = console or Console(stderr=True)
    load_plugins()
    MODELS[model_name]  # fail on an unknown name before loading any data
    # A command-line argument left at None was not given: it must not replace a suite's value.
    given = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr}.items() if v is not None}
    recipe = _effective_recipe(load_recipe(model_name, dataset, recipe_path), model_overrides,
                               {**(training_overrides or {}), **given})
    settings = recipe.training
    torch_device = pick_device(device)
    train_set = load_dataset(dataset, "train", data_root)
    test_set = load_dataset(dataset, "test", data_root)
    model_args = {**dataset_model_args(model_name, train_set, settings.batch_size), **recipe.model_args}

    torch.manual_seed(seed)
    model = create_model(model_name, **model_args).to(torch_device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    run_dir = Path(run_dir or Path("runs") / f"{model_name}-{dataset}-s{seed}")
    checkpoint_path = run_dir / CHECKPOINT_NAME
    meta = {"dataset": dataset, "seed": seed, "recipe": recipe.as_dict()}
    start_epoch = _resume(model, optimizer, run_dir, meta, model_args, console)
    if start_epoch > settings.epochs:
        raise ValueError(f"{run_dir} already holds a model trained for {start_epoch} epochs, more than the "
                         f"{settings.epochs} asked for; pass another --run-dir or delete the old run.")

    # Epochs past the checkpoint (a crash after writing the history) are dropped: they will be trained again.
    history = [h for h in _read_history(run_dir) if h["epoch"] <= start_epoch]
    steps_per_epoch = len(train_set) // settings.batch_size  # drop_last, as the authors' loaders
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {settings.batch_size} exceeds the {len(train_set)} training images of {dataset}.")
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[terms]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"{model_name} on {dataset}", total=settings.epochs * steps_per_epoch,
                            completed=start_epoch * steps_per_epoch, terms="")
        for epoch in range(start_epoch, settings.epochs):
            record = _train_epoch(model, optimizer, recipe, train_set, torch_device, seed, epoch, steps_per_epoch,
                                  bar, task)
            history.append(record)
            if not console.is_terminal:  # batch jobs: a readable line per epoch instead of a live bar
                console.print(f"{model_name} {dataset} epoch {epoch + 1}/{settings.epochs}: "
                              + " ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "epoch"))
            _save_epoch(run_dir, model, optimizer, history, {**meta, "epoch": epoch + 1, "epochs": settings.epochs})

    model.eval()
    test_mse = reconstruction_mse(model, test_set, torch_device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        samples = save_image_grid(model.sample(64, generator), run_dir / "samples.png", columns=8)
    return TrainResult(model, run_dir, checkpoint_path, samples, test_mse, history)


def _effective_recipe(recipe: Recipe, model_overrides: dict[str, Any] | None,
                      training_overrides: dict[str, Any]) -> Recipe:
    """The recipe with a suite's or the command line's overrides applied (None values leave a setting alone)."""
    settings = recipe.training.replace(**training_overrides)
    return Recipe(recipe.model, recipe.dataset, {**recipe.model_args, **(model_overrides or {})}, settings,
                  recipe.source)


def _save_epoch(run_dir: Path, model: AutoEncoder, optimizer: torch.optim.Optimizer,
                history: list[dict[str, float]], meta: dict[str, Any]) -> None:
    """Persist a finished epoch; the checkpoint is written last, so it only exists once the rest does."""
    epoch = meta["epoch"]
    save_optimizer(run_dir / OPTIMIZER_PATTERN.format(epoch=epoch), optimizer)
    atomic_write(run_dir / "history.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in history)))
    save_checkpoint(run_dir / CHECKPOINT_NAME, model, **meta)
    (run_dir / OPTIMIZER_PATTERN.format(epoch=epoch - 2)).unlink(missing_ok=True)  # keep the last two


def _train_epoch(model: AutoEncoder, optimizer: torch.optim.Optimizer, recipe: Recipe, train_set: ImageDataset,
                 device: torch.device, seed: int, epoch: int, steps: int, bar: Progress, task: Any) -> dict[str, float]:
    model.train()
    _set_lr(optimizer, recipe, epoch)
    # Reseeding per epoch makes a resumed run identical to an uninterrupted one.
    torch.manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    sums: dict[str, float] = {}
    batch_size = recipe.training.batch_size
    for step in range(steps):
        x = train_set.batch(order[step * batch_size : (step + 1) * batch_size]).to(device)
        terms = model.loss(x)
        _check_finite(terms, epoch, step)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        shown = " ".join(f"{k}={v / (step + 1):.4g}" for k, v in sums.items())
        bar.update(task, advance=1, terms=f"ep {epoch + 1} {shown}")
    return {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}}


def _resume(model: AutoEncoder, optimizer: torch.optim.Optimizer, run_dir: Path, meta: dict[str, Any],
            model_args: dict[str, Any], console: Console) -> int:
    """Load the last finished epoch from ``run_dir`` if it holds this configuration; return the next epoch."""
    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.exists():
        return 0
    saved = read_metadata(checkpoint)
    mine = json.loads(json.dumps({"model": model.registry_name, "model_args": model_args, **meta}, default=list))
    for key in ("model", "model_args", "dataset", "seed"):
        if saved.get(key) != mine.get(key):
            raise ValueError(
                f"{run_dir} holds a checkpoint with a different {key} ({saved.get(key)!r} vs {mine.get(key)!r}). "
                "Pass another --run-dir or delete the old run."
            )
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(checkpoint)))
    epoch = int(saved.get("epoch", 0))
    optimizer_file = run_dir / OPTIMIZER_PATTERN.format(epoch=epoch)
    if optimizer_file.exists():
        load_optimizer(optimizer_file, optimizer)
    else:
        console.print(f"[yellow]No optimizer state for epoch {epoch} in {run_dir}; Adam restarts from zero moments.[/]")
    console.print(f"Resuming {run_dir} after epoch {epoch}.")
    return epoch


def _read_history(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["TrainResult", "TrainingDivergedError", "pick_device", "reconstruction_mse", "train"]
