"""Reader for the IDX files of MNIST and Fashion-MNIST (raw or gzipped).

Format (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of dimensions n,
then n int32 sizes, then the data. Images are magic 0x00000803 with sizes (N, 28, 28) (16-byte header), labels
0x00000801 with size (N,) (8-byte header). Every check below exists because a truncated download otherwise
reshapes into plausible-looking garbage.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from aebench.data.errors import DataError

_UBYTE = 0x08


def read_bytes(path: Path) -> bytes:
    """Return the (decompressed, for ``.gz``) content of ``path``.

    Raises:
        DataError: If the file cannot be read or the gzip stream is corrupt or truncated.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path} is not a valid gzip file or is truncated ({err}). Delete it and download it "
                        "again (`aebench data download NAME`).") from err
    except OSError as err:
        raise DataError(f"Cannot read {path}: {err}.") from err


def parse_idx(data: bytes, path: Path, ndim: int) -> np.ndarray:
    """Parse IDX bytes holding unsigned bytes with ``ndim`` dimensions.

    Args:
        data: The decompressed file content.
        path: The file, for error messages.
        ndim: Expected number of dimensions (3 for images, 1 for labels).

    Returns:
        A read-only uint8 array of the shape given in the header.

    Raises:
        DataError: On a bad magic number, a wrong number of dimensions, or a size that does not match the header.
    """
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{path} is empty or truncated ({len(data)} bytes); expected an IDX file. "
                        "Delete it and download it again.")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != _UBYTE or dims != ndim:
        expected = 0x0800 + ndim
        raise DataError(f"{path} has IDX magic number 0x{int.from_bytes(data[:4], 'big'):08x}, expected "
                        f"0x{expected:08x} ({'images' if ndim == 3 else 'labels'}, unsigned bytes). The file is "
                        "corrupt or not the file its name says (images and labels swapped?).")
    if len(data) < header_len:
        raise DataError(f"{path} is truncated inside its header ({len(data)} bytes).")
    shape = struct.unpack(f">{ndim}i", data[4:header_len])
    expected_size = int(np.prod(shape, dtype=np.int64))
    actual_size = len(data) - header_len
    if min(shape) < 0 or actual_size != expected_size:
        raise DataError(f"{path}: the header announces shape {tuple(shape)} = {expected_size} bytes of data but "
                        f"the file holds {actual_size}; it is truncated or corrupt. Delete it and download it again.")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int = 10,
                  image_size: tuple[int, int] = (28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an images file and its labels file.

    Returns:
        ``(images, labels)``: uint8 (N, H, W) and uint8 (N,).

    Raises:
        DataError: If either file is corrupt, the image size is not ``image_size``, a label is out of range,
            or the counts differ.
    """
    images = parse_idx(read_bytes(images_path), images_path, ndim=3)
    labels = parse_idx(read_bytes(labels_path), labels_path, ndim=1)
    if images.shape[1:] != tuple(image_size):
        raise DataError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; the official files are "
                        f"{image_size[0]}x{image_size[1]}.")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                        "the two files do not belong together (mixed splits or datasets?).")
    if len(labels) and int(labels.max()) >= num_classes:
        raise DataError(f"{labels_path} contains label {int(labels.max())}, outside 0..{num_classes - 1}; "
                        "the file is corrupt.")
    return images, labels
