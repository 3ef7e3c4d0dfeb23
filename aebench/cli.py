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


def _load_suite_or_fail(suite_path: Path, check_data: bool = True):
    from aebench.suite import SuiteError, load_suite

    try:
        return load_suite(suite_path, check_data=check_data)
    except SuiteError as err:
        _fail(str(err))


@app.command()
def validate(suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file.")) -> None:
    """Check a suite (keys, names, budgets, data and checkpoint files) without computing anything."""
    suite = _load_suite_or_fail(suite_path)
    cells = suite.cells()
    console.print(f"[green]ok[/] {suite_path}: suite {suite.name!r} v{suite.version}, {len(cells)} cells "
                  f"({len(suite.datasets)} datasets × {len(suite.models)} models × {len(suite.seeds)} seeds), "
                  f"{len(suite.attacks)} attacks, N={suite.n_images} × T={suite.n_trials}.")


@app.command()
def run(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file."),
    shard: str = typer.Option("0/1", help="Run only cells i, i+N, i+2N, ... of the suite (i/N, 0-based)."),
    output: Optional[Path] = typer.Option(None, help="Override the suite's output folder."),
    report: bool = typer.Option(True, help="Render tables and figures when the run ends."),
) -> None:
    """Train or load every model of a suite, attack it, and write tidy rows, tables and figures.

    Finished cells are skipped on a rerun; a failing cell is recorded and the others go on. The exit
    code is 1 if any cell failed.
    """
    import dataclasses

    from aebench.runner import parse_shard, run_suite

    suite = _load_suite_or_fail(suite_path)
    if output is not None:
        suite = dataclasses.replace(suite, output=str(output))
    try:
        shard_pair = parse_shard(shard)
    except ValueError as err:
        _fail(str(err))
        return
    summary = run_suite(suite, shard_pair, console=err_console)
    console.print(f"cells: {len(summary.finished)} finished, {len(summary.skipped)} skipped (already done), "
                  f"{len(summary.failed)} failed")
    for cell_id, error in summary.failed.items():
        console.print(f"  [red]failed[/] {cell_id}: {error}")
    if report and (summary.finished or summary.skipped):
        _render(Path(suite.output), None, show=True)
    if summary.failed:
        raise typer.Exit(code=1)


def _render(run_dir: Path, out_dir: Optional[Path], show: bool) -> None:
    from aebench.report import render_report

    written = render_report(run_dir, out_dir)
    if show:
        for path in written:
            if path.suffix == ".md" and "_noise" not in path.name:
                console.print()
                console.print(path.read_text(), markup=False, soft_wrap=True)
    console.print(f"report: {len(written)} files in {written[0].parent}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Output folder of `aebench run`."),
    out: Optional[Path] = typer.Option(None, help="Where to write (default RUN_DIR/report)."),
) -> None:
    """Render Table 1 (LaTeX + Markdown) and Figures 2-3 from a run folder's rows, without re-running anything."""
    try:
        _render(run_dir, out, show=True)
    except FileNotFoundError as err:
        _fail(str(err))


from aebench.data.cli import app as data_app  # noqa: E402  (sub-command owned by the data package)

app.add_typer(data_app, name="data", help="Dataset files: list, locate and download.")


def main() -> None:
    """Entry point of the ``aebench`` console script."""
    app()


if __name__ == "__main__":
    main()
