"""The ``aebench`` command line: list models, train, and (with the suite runner) run and report suites."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from aebench.models import MODELS, list_models

app = typer.Typer(help="Adversarial-robustness benchmark harness for autoencoders.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
ls_app = typer.Typer(help="List registered models and other components.", no_args_is_help=True)
app.add_typer(ls_app, name="ls")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@ls_app.command("models")
def ls_models(pattern: str = typer.Argument("*", help="Shell-style filter, e.g. '*gmm*'.")) -> None:
    """Print every registered model with a one-line description and its paper."""
    table = Table("model", "description", "paper")
    for name in list_models(pattern):
        cls = MODELS[name]
        table.add_row(name, cls.description or (cls.__doc__ or "").strip().splitlines()[0], cls.paper)
    console.print(table)


@app.command()
def train(
    model: str = typer.Argument(..., help="Registered model name (see `aebench ls models`)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `aebench data ls`)."),
    epochs: Optional[int] = typer.Option(None, help="Override the recipe's epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Override the recipe's batch size."),
    lr: Optional[float] = typer.Option(None, help="Override the recipe's learning rate."),
    seed: int = typer.Option(0, help="Seed for initialisation, batch order and training noise."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1, ... (default: cuda when available)."),
    recipe: Optional[Path] = typer.Option(None, help="Recipe YAML (default: baselines/MODEL.yaml)."),
    run_dir: Optional[Path] = typer.Option(None, help="Output folder (default: runs/MODEL-DATASET-sSEED); resumed if it exists."),
    data_root: Optional[Path] = typer.Option(None, envvar="AEBENCH_DATA", help="Folder with the dataset files."),
) -> None:
    """Train a model, writing a checkpoint per epoch and a sample grid; prints the test reconstruction MSE."""
    from aebench.training import TrainingDivergedError
    from aebench.training import train as run_training

    try:
        result = run_training(model, dataset, recipe_path=recipe, epochs=epochs, batch_size=batch_size, lr=lr,
                              seed=seed, device=device, run_dir=run_dir, data_root=data_root, console=err_console)
    except (KeyError, ValueError, TypeError, FileNotFoundError, TrainingDivergedError) as err:
        _fail(str(err).strip("'\""))
        return
    console.print(f"checkpoint:        {result.checkpoint}")
    console.print(f"sample grid:       {result.samples}")
    console.print(f"test recon. MSE:   {result.test_mse:.5f}")


def _mount_optional_apps() -> None:
    """Attach sub-commands whose modules exist (kept separate so each module owns its commands)."""
    try:
        from aebench.data.cli import app as data_app
    except ImportError:  # pragma: no cover - the data package always ships its CLI
        return
    app.add_typer(data_app, name="data", help="Dataset files: list, locate and download.")


_mount_optional_apps()


def main() -> None:
    """Entry point of the ``aebench`` console script."""
    app()


if __name__ == "__main__":
    main()
