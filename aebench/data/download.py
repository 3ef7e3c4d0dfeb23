"""Download the official dataset files and verify their MD5 checksums.

Checksums are taken over the **decompressed** bytes for gzipped IDX files: mirrors (and Debian) recompress the
archives, so only the content is stable. Every file is streamed to a temporary file in the target folder, checked,
and renamed into place, so an interrupted or corrupt download never leaves a file the loaders would pick up.
CelebA is only distributed through Google Drive / Baidu, so ``download("celeba")`` explains the manual steps.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from aebench.data._info import DATASETS
from aebench.data.errors import DataError
from aebench.data.paths import HOW_TO_GET, resolve_root

_CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteFile:
    """One official file.

    Attributes:
        filename: Name it is saved under (the name on the server).
        md5: MD5 of the file's content, decompressed first when the name ends in ``.gz``.
        urls: Mirrors, tried in order.
    """

    filename: str
    md5: str
    urls: tuple[str, ...]


def _mirrored(filename: str, md5: str, bases: tuple[str, ...]) -> RemoteFile:
    return RemoteFile(filename, md5, tuple(base + filename for base in bases))


# yann.lecun.com often refuses scripted downloads, so it comes last.
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FMNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_SVHN_MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)

REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        _mirrored("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb", _MNIST_MIRRORS),
        _mirrored("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624", _MNIST_MIRRORS),
        _mirrored("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea", _MNIST_MIRRORS),
        _mirrored("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637", _MNIST_MIRRORS),
    ),
    # Computed from the decompressed official files shipped by Debian's dataset-fashion-mnist.
    "fashion_mnist": (
        _mirrored("train-images-idx3-ubyte.gz", "f4a8712d7a061bf5bd6d2ca38dc4d50a", _FMNIST_MIRRORS),
        _mirrored("train-labels-idx1-ubyte.gz", "9018921c3c673c538a1fc5bad174d6f9", _FMNIST_MIRRORS),
        _mirrored("t10k-images-idx3-ubyte.gz", "8181f5470baa50b63fa0f6fddb340f0a", _FMNIST_MIRRORS),
        _mirrored("t10k-labels-idx1-ubyte.gz", "15d484375f8d13e6eb1aabb0c3f46965", _FMNIST_MIRRORS),
    ),
    "svhn": (
        _mirrored("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", _SVHN_MIRRORS),
        _mirrored("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", _SVHN_MIRRORS),
    ),
}

# For users who fetch CelebA by hand: MD5s of the official files (checked by ``verify_file``).
CELEBA_MD5 = {
    "img_align_celeba.zip": "00d2c5bc6d35e252742224ab0c1e8fcb",
    "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
}


class ChecksumError(DataError):
    """A file's MD5 differs from the official one."""


def content_md5(path: Path, gzipped: bool | None = None) -> str:
    """MD5 of ``path``'s content, decompressing gzip files first.

    Args:
        path: The file.
        gzipped: Whether it is gzip-compressed; default: whether its name ends in ``.gz``.

    Raises:
        ChecksumError: If a ``.gz`` file is not valid gzip (a truncated or HTML error page download).
    """
    digest = hashlib.md5()
    try:
        if gzipped is None:
            gzipped = path.suffix == ".gz"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ChecksumError(f"{path} is not a valid gzip file ({err}).") from err
    return digest.hexdigest()


def verify_file(path: Path, md5: str) -> bool:
    """Whether ``path`` exists and its (decompressed) content has MD5 ``md5``."""
    try:
        return path.is_file() and content_md5(path) == md5
    except ChecksumError:
        return False


def download(name: str, root: str | Path | None = None, *, force: bool = False, quiet: bool = False) -> list[Path]:
    """Fetch the official files of ``name`` into ``<root>/<name>/`` and verify them.

    Files already present with the right checksum are kept (pass ``force=True`` to fetch them again).

    Args:
        name: A dataset name (``mnist``, ``fashion_mnist``, ``svhn``; ``celeba`` explains the manual download;
            ``fashion_mnist_mini`` is embedded and needs nothing).
        root: Data root; default ``$AEBENCH_DATA``, else ``~/.cache/aebench/data``.
        force: Download even files that are present and valid.
        quiet: No progress bar.

    Returns:
        The paths of the dataset's files.

    Raises:
        DataError: If no mirror could be reached (listing each URL and its error), a checksum does not match,
            or the dataset cannot be downloaded automatically (CelebA).
    """
    DATASETS[name]  # unknown name -> "did you mean"
    target = resolve_root(root) / name
    if name == "fashion_mnist_mini":
        from aebench.data.loaders import mini_path

        return [mini_path()]
    if name not in REMOTE_FILES:
        raise DataError(f"Dataset {name!r} cannot be downloaded automatically. "
                        + HOW_TO_GET.get(name, "Put its files in {target}.").format(target=target))
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for remote in REMOTE_FILES[name]:
        path = target / remote.filename
        if force or not verify_file(path, remote.md5):
            _fetch(remote, path, quiet=quiet)
        paths.append(path)
    return paths


def _fetch(remote: RemoteFile, path: Path, quiet: bool) -> None:
    """Try each mirror of ``remote`` until one gives a file with the right checksum; install it at ``path``."""
    failures: list[str] = []
    checksum_failures: list[str] = []
    for url in remote.urls:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            _stream(url, tmp, label=remote.filename, quiet=quiet)
            got = content_md5(tmp, gzipped=path.suffix == ".gz")  # the .part name hides the suffix
            if got != remote.md5:
                raise ChecksumError(f"MD5 of the content is {got}, expected {remote.md5}")
            os.replace(tmp, path)
            return
        except ChecksumError as err:
            checksum_failures.append(f"  {url}: {err}")
        except (URLError, OSError, ValueError) as err:  # HTTPError, timeouts and resets are URLError/OSError
            reason = str(err) if isinstance(err, HTTPError) else getattr(err, "reason", err)
            failures.append(f"  {url}: {type(err).__name__}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
    if checksum_failures:
        raise ChecksumError(f"Downloaded {remote.filename} but its checksum does not match (corrupt transfer or "
                            "changed mirror); nothing was saved:\n" + "\n".join(checksum_failures + failures)
                            + "\nTry again, or fetch the file by hand and put it at " + str(path) + ".")
    raise DataError(f"Could not download {remote.filename}:\n" + "\n".join(failures)
                    + f"\nCheck the network (or a proxy via $https_proxy), or copy the file by hand to {path}.")


def _stream(url: str, dest: Path, label: str, quiet: bool) -> None:
    """Write the body of ``url`` to ``dest`` in chunks, with a progress bar unless ``quiet``."""
    request = Request(url, headers={"User-Agent": "aebench (python urllib)"})
    with urlopen(request, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length") if getattr(response, "headers", None) else None
        total = int(length) if length and str(length).isdigit() else None
        advance = _progress(label, total, quiet)
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                advance(len(chunk))
        finally:
            advance(-1)
        if total is not None and out.tell() != total:
            raise OSError(f"connection closed after {out.tell()} of {total} bytes")


def _progress(label: str, total: int | None, quiet: bool) -> Callable[[int], None]:
    """A callback advancing a rich progress bar by n bytes; ``-1`` closes it."""
    if quiet:
        return lambda n: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=Console(stderr=True))
    task = progress.add_task(label, total=total)
    progress.start()

    def advance(n: int) -> None:
        if n < 0:
            progress.stop()
        else:
            progress.update(task, advance=n)

    return advance
