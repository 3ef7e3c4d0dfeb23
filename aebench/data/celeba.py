"""CelebA (aligned and cropped) from ``img_align_celeba/*.jpg`` plus ``list_eval_partition.txt``.

Preprocessing follows the authors' code: center-crop 140×140, then resize to 64×64 (PIL bilinear). Decoding
~200k JPEGs takes minutes, so each split is converted once and cached as a uint8 ``.npy`` (N, 3, 64, 64) next to
the data (``celeba_<split>_c140_s64_<hash>.npy``, where the hash covers the split's file list, so an edited
partition file never reuses a stale cache). If that folder is read-only, the cache goes to
``~/.cache/aebench/celeba/``. The cache is written to a temporary file and renamed, so an interrupted conversion
never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from aebench.data.errors import DataError
from aebench.data.transforms import crop_and_resize

PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
CROP = 140
SIZE = 64
FALLBACK_CACHE = Path("~/.cache/aebench/celeba")
# Below this many images the progress bar is more noise than help (tests, tiny folders).
_PROGRESS_MIN = 500


def read_partition(path: Path, split: str) -> list[str]:
    """Return the image file names of ``split`` listed in ``list_eval_partition.txt``, in file order.

    Raises:
        DataError: On an unreadable file or a malformed line (reported with its line number).
    """
    code = SPLIT_CODES[split]
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"Cannot read {path}: {err}.") from err
    names: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{lineno}: expected '<image>.jpg <0|1|2>', got {line.strip()!r}. "
                            "The partition file is corrupt; download it again.")
        if int(parts[1]) == code:
            names.append(parts[0])
    if not names:
        raise DataError(f"{path} lists no image for the {split!r} split (partition code {code}).")
    return names


def load_image(path: Path) -> np.ndarray:
    """Decode one CelebA JPEG and return the 64×64 crop as uint8 (3, 64, 64).

    Raises:
        DataError: If the file is missing, unreadable, or smaller than the 140-pixel crop.
    """
    try:
        with Image.open(path) as img:
            img.load()  # PIL decodes lazily; force it here so a truncated JPEG fails inside this try
            if img.width < CROP or img.height < CROP:
                raise DataError(f"{path} is {img.width}x{img.height}, smaller than the {CROP}x{CROP} center crop; "
                                "expected the aligned 178x218 CelebA images (img_align_celeba).")
            return crop_and_resize(img, CROP, SIZE).transpose(2, 0, 1)
    except FileNotFoundError as err:
        raise DataError(f"{path} is listed in {PARTITION_FILE} but does not exist; the image folder is "
                        "incomplete (unzip img_align_celeba.zip again).") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path} is not a readable JPEG ({type(err).__name__}: {err}); the file is corrupt or "
                        "truncated. Unzip img_align_celeba.zip again.") from err


def _cache_name(split: str, names: list[str]) -> str:
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:10]
    return f"celeba_{split}_c{CROP}_s{SIZE}_{digest}.npy"


def _read_cache(path: Path, n: int) -> np.ndarray | None:
    """The cached array if it is complete and well-formed, else None (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        warnings.warn(f"Ignoring unreadable CelebA cache {path} ({err}); rebuilding it.", stacklevel=3)
        return None
    if arr.dtype != np.uint8 or arr.shape != (n, 3, SIZE, SIZE):
        warnings.warn(f"Ignoring CelebA cache {path} with shape {arr.shape} {arr.dtype}; rebuilding it.",
                      stacklevel=3)
        return None
    return arr


def _write_cache(arr: np.ndarray, targets: list[Path]) -> Path | None:
    """Save ``arr`` atomically to the first writable target; None if none is writable."""
    for target in targets:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            os.replace(tmp, target)
            return target
        except OSError:
            tmp.unlink(missing_ok=True)
    return None


def convert(image_dir: Path, names: list[str], description: str) -> np.ndarray:
    """Decode, crop and resize ``names`` from ``image_dir`` into one uint8 (N, 3, 64, 64) array."""
    out = np.empty((len(names), 3, SIZE, SIZE), dtype=np.uint8)
    # PIL releases the GIL while decoding and resizing, so threads give a real speed-up without pickling.
    # Work goes in chunks so that a corrupt file stops the conversion quickly and results never pile up.
    workers = max(1, min(8, os.cpu_count() or 1))
    chunk = 64 * workers
    progress = None
    if len(names) >= _PROGRESS_MIN:
        from rich.console import Console
        from rich.progress import Progress

        progress = Progress(console=Console(stderr=True))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if progress is not None:
            progress.start()
            task = progress.add_task(description, total=len(names))
        try:
            for start in range(0, len(names), chunk):
                batch = [image_dir / n for n in names[start : start + chunk]]
                for i, img in enumerate(pool.map(load_image, batch), start=start):
                    out[i] = img
                if progress is not None:
                    progress.update(task, advance=len(batch))
        finally:
            if progress is not None:
                progress.stop()
    return out


def load_celeba(folder: Path, split: str) -> np.ndarray:
    """Return the preprocessed images of ``split`` (uint8, (N, 3, 64, 64)), converting and caching on first use.

    Args:
        folder: The folder holding ``img_align_celeba/`` and ``list_eval_partition.txt``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
    """
    names = read_partition(folder / PARTITION_FILE, split)
    cache_name = _cache_name(split, names)
    fallback = FALLBACK_CACHE.expanduser() / hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    targets = [folder / cache_name, fallback / cache_name]
    for target in targets:
        cached = _read_cache(target, len(names))
        if cached is not None:
            return cached
    arr = convert(folder / IMAGE_DIR, names, f"CelebA {split}: crop {CROP}, resize {SIZE}")
    if _write_cache(arr, targets) is None:
        warnings.warn(f"Could not write the CelebA cache to {targets[0]} or {targets[1]}; the conversion will run "
                      "again next time.", stacklevel=2)
    return arr
