"""Image resizing and cropping with PIL, matching the authors' preprocessing.

The authors resized MNIST/Fashion-MNIST 28→32 offline with PIL-bilinear and used torchvision's
``CenterCrop(140)`` + ``Resize(64)`` (PIL bilinear under the hood) for CelebA. PIL works in 8-bit fixed point, so
we call it per image rather than re-deriving the interpolation with tensors: the result is then bit-identical to
what a PIL-based pipeline stores, and 60,000 MNIST images still take about a second.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_stack(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a stack of uint8 images with PIL bilinear.

    Args:
        images: uint8 array (N, H, W) (grayscale) or (N, H, W, 3) (RGB).
        size: Target ``(height, width)``.

    Returns:
        uint8 array (N, height, width) or (N, height, width, 3).
    """
    height, width = size
    out = np.empty((len(images), height, width, *images.shape[3:]), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((width, height), Image.BILINEAR))
    return out


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """PIL crop box ``(left, top, right, bottom)`` of a centered ``crop``×``crop`` square.

    Rounded as torchvision's ``CenterCrop`` does (``int(round((size - crop) / 2))``), so CelebA's 178×218 images
    give the same 140×140 window as the authors' pipeline.
    """
    left = int(round((width - crop) / 2.0))
    top = int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def crop_and_resize(image: Image.Image, crop: int, size: int) -> np.ndarray:
    """Center-crop ``image`` to ``crop``×``crop`` then resize to ``size``×``size`` (bilinear), as uint8 HWC RGB."""
    image = image.convert("RGB")
    cropped = image.crop(center_crop_box(image.width, image.height, crop))
    return np.asarray(cropped.resize((size, size), Image.BILINEAR))
