"""Where dataset files are looked for, and the "missing files" message.

Data root, in order of precedence:

1. the ``data_root`` argument (``--data-root`` on the command line, ``data_root:`` in a suite);
2. the environment variable ``AEBENCH_DATA``;
3. ``~/.cache/aebench/data`` (created by ``aebench data download``).

Inside the root a dataset's files are looked for in ``<root>/<name>/`` first, then in the folder names other tools
use (torchvision's ``<root>/MNIST/raw/`` and ``<root>/FashionMNIST/raw/``, and ``<root>/fashion-mnist/``), then in
``<root>/`` itself. After the root, system locations are searched: the Debian package ``dataset-fashion-mnist``
installs the official Fashion-MNIST files in ``/usr/share/datasets/fashion-mnist/``.

All files of one split must come from one folder: mixing, say, MNIST images with Fashion-MNIST labels of the same
size would load without any error, so a folder that holds only part of a split is reported, not completed from
elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aebench.data.errors import DataError

ENV_VAR = "AEBENCH_DATA"
DEFAULT_ROOT = Path("~/.cache/aebench/data")

# Folder names (relative to the root) other tools use, so files fetched by them are found without copying.
# (torchvision keeps SVHN in the root itself and CelebA in ``<root>/celeba/``, which are searched anyway.)
ALIASES: dict[str, tuple[str, ...]] = {
    "mnist": ("MNIST/raw",),
    "fashion_mnist": ("fashion-mnist", "FashionMNIST/raw"),
}

# Searched after the data root. Module-level so tests (and packagers) can change it.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

# How to get the files, appended to every "missing" message.
HOW_TO_GET: dict[str, str] = {
    "mnist": "Run `aebench data download mnist` (needs internet), or copy the four official IDX files "
             "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
             "t10k-labels-idx1-ubyte[.gz]) into {target}.",
    "fashion_mnist": "Run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, puts the files in "
                     "/usr/share/datasets/fashion-mnist/), or `aebench data download fashion_mnist` (needs "
                     "internet), or copy the four official IDX files into {target}.",
    "svhn": "Run `aebench data download svhn` (needs internet, about 240 MB), or download train_32x32.mat and "
            "test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into {target}.",
    "celeba": "CelebA has no direct download link: get img_align_celeba.zip and list_eval_partition.txt from "
              "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive / Baidu links), then unzip so that "
              "{target}/img_align_celeba/000001.jpg and {target}/list_eval_partition.txt exist.",
}


def resolve_root(data_root: str | Path | None = None) -> Path:
    """Return the data root: the argument, else ``$AEBENCH_DATA``, else ``~/.cache/aebench/data``.

    The path is expanded (``~``) and made absolute but need not exist.
    """
    if data_root is None or str(data_root) == "":
        data_root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(data_root).expanduser().absolute()


def candidate_dirs(name: str, data_root: str | Path | None = None) -> list[Path]:
    """Folders searched for ``name``'s files, in order (see the module docstring)."""
    root = resolve_root(data_root)
    dirs = [root / name, *(root / alias for alias in ALIASES.get(name, ())), root]
    dirs += list(SYSTEM_DIRS.get(name, ()))
    # Keep order, drop duplicates (an alias can coincide with the name on case-insensitive file systems).
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


@dataclass(frozen=True)
class FileSpec:
    """A file a split needs.

    Attributes:
        name: File name relative to the dataset folder (may contain ``/`` for a folder such as CelebA's images).
        gz_ok: Whether ``<name>.gz`` is accepted in place of ``<name>``.
        is_dir: Whether it is a folder rather than a file.
    """

    name: str
    gz_ok: bool = False
    is_dir: bool = False

    def find_in(self, folder: Path) -> Path | None:
        """The matching path inside ``folder``, or None. The uncompressed file wins over the ``.gz``."""
        options = [folder / self.name] + ([folder / (self.name + ".gz")] if self.gz_ok else [])
        for path in options:
            if (path.is_dir() if self.is_dir else path.is_file()):
                return path
        return None

    def describe(self) -> str:
        """Human-readable name, e.g. ``train-images-idx3-ubyte[.gz]``."""
        return self.name + ("[.gz]" if self.gz_ok else "") + ("/" if self.is_dir else "")


def find_files(name: str, split: str, specs: Sequence[FileSpec], data_root: str | Path | None = None,
               dataset_specs: Sequence[FileSpec] = ()) -> list[Path]:
    """Find all ``specs`` of one split in the first folder that holds any file of the dataset.

    Args:
        name: The dataset.
        split: The split the specs belong to (for messages).
        specs: The files of that split.
        data_root: As passed to the loader.
        dataset_specs: The files of every split; the first folder holding any of them is the dataset's folder, so
            a split missing there is reported instead of being taken from a later folder (another copy, perhaps of
            another version of the data).

    Raises:
        DataError: Naming every folder searched, any folder holding only part of the files, and how to get them.
    """
    found, partial = search(name, specs, data_root, dataset_specs)
    if found is None:
        raise DataError(missing_message(name, [(split, specs, partial)], data_root))
    return found


def missing_message(name: str, missing: Sequence[tuple[str, Sequence[FileSpec], list[str]]],
                    data_root: str | Path | None) -> str:
    """The error text for files that are missing.

    Args:
        name: The dataset.
        missing: ``(split, specs, partial_folder_notes)`` for each split that could not be found.
        data_root: As passed to the loader.
    """
    dirs = candidate_dirs(name, data_root)
    lines = [f"Dataset {name!r}: files not found."]
    for split, specs, _ in missing:
        lines.append(f"  {split} split needs: {', '.join(s.describe() for s in specs)}")
    lines.append("Searched:")
    lines += [f"  {d}{'' if d.is_dir() else ' (does not exist)'}" for d in dirs]
    partial = sorted({note for _, _, notes in missing for note in notes})
    if partial:
        lines += ["Incomplete folders (a dataset is read from the first folder holding any of its files):", *partial]
    lines.append("Fix: " + HOW_TO_GET.get(name, "put the files in {target}.").format(target=dirs[0]))
    lines.append(f"(The data root is --data-root / the suite's `data_root`, else ${ENV_VAR}, else {DEFAULT_ROOT}.)")
    return "\n".join(lines)


def search(name: str, specs: Sequence[FileSpec], data_root: str | Path | None,
           dataset_specs: Sequence[FileSpec] = ()) -> tuple[list[Path] | None, list[str]]:
    """``(paths, [])`` from the dataset's folder, else ``(None, notes on incomplete folders)``.

    The dataset's folder is the first folder that holds every spec, or any of ``dataset_specs`` (the files of all
    splits): a folder with part of the dataset ends the search rather than being completed from elsewhere.
    """
    partial: list[str] = []
    for folder in candidate_dirs(name, data_root):
        found = [spec.find_in(folder) for spec in specs]
        if all(p is not None for p in found):
            return [p for p in found if p is not None], []
        holds_some = any(p is not None for p in found) or any(s.find_in(folder) for s in dataset_specs)
        if holds_some:
            lacking = ", ".join(s.describe() for s, p in zip(specs, found, strict=True) if p is None)
            partial.append(f"  {folder} lacks {lacking}")
            return None, partial
    return None, partial



