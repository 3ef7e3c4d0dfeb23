"""Image grids written as PNG with Pillow (aebench does not depend on torchvision)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor


def image_grid(images: Tensor, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile (B, C, H, W) images in [0, 1] into one uint8 (H', W', C) array with white padding."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    b, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(b))
    rows = math.ceil(b / columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    pixels = (images.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for i in range(b):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i].transpose(1, 2, 0)
    return grid


def save_image_grid(images: Tensor, path: str | Path, columns: int | None = None) -> Path:
    """Save ``images`` as a PNG grid at ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, columns)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
    return path
