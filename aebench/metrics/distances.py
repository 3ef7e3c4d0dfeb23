"""Pixel-space distances between image batches.

The l2 distances of the appendix of Saseendran et al., "Trading off Image Quality for Robustness is not Necessary
with Regularized Deterministic Autoencoders" (NeurIPS 2022): the Euclidean norm of the flattened difference of two
images, in [0, 1] pixel units (the authors' ``recon_dist``, ``official-code-spec.md`` §7.1/§7.2). The attack budget
λ is measured in the same units, so ‖x − x_a‖ ≤ λ.
"""

from __future__ import annotations

from torch import Tensor


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-image Euclidean distance ‖a_i − b_i‖₂ over all channels and pixels.

    Args:
        a: Images (B, ...) — usually (B, C, H, W) in [0, 1].
        b: Images of the same shape.

    Returns:
        Shape (B,) distances, in the units of the inputs; differentiable.

    Raises:
        ValueError: If the shapes differ or the inputs have no batch dimension.
        TypeError: If the inputs are not floating-point tensors.
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"l2_distance expects two tensors, got {type(a).__name__} and {type(b).__name__}.")
    if a.shape != b.shape:
        raise ValueError(
            f"l2_distance expects two batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    if a.dim() < 2:
        raise ValueError(f"l2_distance expects a batch of shape (B, ...), got shape {tuple(a.shape)}.")
    if not a.is_floating_point() or not b.is_floating_point():
        raise TypeError(f"l2_distance expects floating-point images, got {a.dtype} and {b.dtype}.")
    # Tensor.norm has a zero (NaN-free) subgradient at 0, so identical images do not poison a backward pass.
    return (a - b).flatten(1).norm(dim=1)
