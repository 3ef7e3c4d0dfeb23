"""``aebench data ...``: list datasets, show where their files are, and download them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aebench.data._info import DATASETS
from aebench.data.errors import DataError
from aebench.data.loaders import locate, missing_files_message, splits_of
from aebench.data.paths import ENV_VAR, resolve_root
from aebench.registry import UnknownNameError

app = typer.Typer(help="Dataset files: list, locate and download.", no_args_is_help=True)
_out = Console()
_err = Console(stderr=True)

_DATA_ROOT = typer.Option(None, "--data-root", envvar=ENV_VAR,
                          help="Folder with the dataset files (default: $AEBENCH_DATA, else ~/.cache/aebench/data).")


def _where(name: str, data_root: Path | None) -> str:
    """Folder the files of every split were found in, or 'missing (...)'."""
    folders, missing = [], []
    for split in ("train", "test"):
        try:
            folders.append(str(locate(name, split, data_root)[0].parent))
        except DataError:
            missing.append(split)
    if missing:
        return f"missing ({', '.join(missing)})"
    return ", ".join(dict.fromkeys(folders))


def _table(data_root: Path | None) -> Table:
    table = Table(title=f"Datasets (data root: {resolve_root(data_root)})")
    for column in ("name", "shape", "classes", "D", "K"):
        table.add_column(column, no_wrap=True)
    table.add_column("files", overflow="fold")
    for name, info in DATASETS.items():
        where = _where(name, data_root)
        style = "red" if where.startswith("missing") else ""
        table.add_row(name, "x".join(map(str, info.image_shape)), str(info.num_classes or "-"),
                      str(info.latent_dim), str(info.num_components), f"[{style}]{where}[/]" if style else where)
    return table


@app.command("ls")
def ls(data_root: Path | None = _DATA_ROOT) -> None:
    """List the datasets, their image shape, classes and where their files were found."""
    _out.print(_table(data_root))


@app.command("info")
def info(name: str | None = typer.Argument(None, help="A dataset name; all datasets when omitted."),
         data_root: Path | None = _DATA_ROOT) -> None:
    """Describe one dataset (files, license, latent size) or list them all."""
    if name is None:
        _out.print(_table(data_root))
        return
    try:
        meta = DATASETS[name]
    except UnknownNameError as err:
        _err.print(f"[red]{err}[/]")
        raise typer.Exit(2) from None
    _out.print(f"[bold]{meta.name}[/]: {meta.description}")
    _out.print(f"  image shape {meta.image_shape}, classes {meta.num_classes}, latent D={meta.latent_dim}, "
               f"GMM K={meta.num_components}")
    _out.print(f"  license: {meta.license}")
    for split in splits_of(name):
        try:
            paths = locate(name, split, data_root)
            _out.print(f"  {split}: " + ", ".join(str(p) for p in paths), markup=False, highlight=False)
        except DataError:
            _out.print(f"  {split}: [red]missing[/]")
    missing = missing_files_message(name, data_root, splits_of(name))
    if missing:
        _out.print(missing, markup=False, highlight=False)


@app.command("download")
def download_cmd(name: str = typer.Argument(..., help="Dataset to fetch (mnist, fashion_mnist, svhn)."),
                 data_root: Path | None = _DATA_ROOT,
                 force: bool = typer.Option(False, "--force", help="Fetch again even if valid files exist.")) -> None:
    """Download the official files of a dataset into <data root>/<name>/ and verify their MD5 checksums."""
    from aebench.data.download import download

    try:
        paths = download(name, data_root, force=force)
    except (DataError, UnknownNameError) as err:
        _err.print(str(err), markup=False, highlight=False, style="red")
        raise typer.Exit(1) from None
    for path in paths:
        _out.print(f"ok  {path}", markup=False, highlight=False)
