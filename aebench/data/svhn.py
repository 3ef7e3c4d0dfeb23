"""Reader for SVHN "format 2" (cropped digits) MATLAB files ``train_32x32.mat`` / ``test_32x32.mat``.

``X`` is uint8 (32, 32, 3, N) laid out (H, W, C, N); ``y`` is (N, 1) with labels 1..10, where 10 means digit 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aebench.data.errors import DataError


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat`` file.

    Returns:
        ``(images, labels)``: uint8 (N, 3, 32, 32) and int64 (N,) with digit 0 as label 0.

    Raises:
        DataError: If the file is not a readable MATLAB file, lacks ``X``/``y``, has the wrong layout, a label
            outside 1..10, or a label count that differs from the image count.
    """
    # Imported here: scipy.io costs ~0.2 s and only SVHN needs it.
    import scipy.io

    hint = "Delete it and download it again (`aebench data download svhn`)."
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, MatReadError... for broken files
        raise DataError(f"{path} is not a readable MATLAB .mat file ({type(err).__name__}: {err}). {hint}") from err
    missing = [k for k in ("X", "y") if k not in mat]
    if missing:
        raise DataError(f"{path} lacks the variable(s) {', '.join(missing)}; an SVHN format-2 file holds X "
                        f"(32x32x3xN images) and y (Nx1 labels). {hint}")
    x, y = mat["X"], mat["y"]
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, N) (the cropped-digits format). "
                        "Full-numbers format 1 files are not supported.")
    labels = np.asarray(y).reshape(-1)
    if labels.size != x.shape[3]:
        raise DataError(f"{path}: {x.shape[3]} images but {labels.size} labels; the file is corrupt. {hint}")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: labels must be 1..10 (10 = digit 0), found {labels.min()}..{labels.max()}.")
    if x.dtype != np.uint8:
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{path}: X has dtype {x.dtype} with values outside 0..255; expected uint8 pixels.")
        x = x.astype(np.uint8)
    # (H, W, C, N) -> (N, C, H, W)
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    return images, (labels.astype(np.int64) % 10)
