"""Feasible-set helpers shared by every optimizer: the L2 ball ‖δ‖₂ ≤ λ and the box x + δ ∈ [0, 1].

The budget is an L2 norm over all pixels of one image, in [0, 1] pixel units (Saseendran et al., NeurIPS 2022,
eq. 12–13; official-code-spec.md §7.1). Every function works per sample on a batch of perturbations (B, ...).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# ‖δ‖ below this is treated as zero: the rescale factor λ/‖δ‖ would overflow.
_TINY = 1e-12


def l2_norms(delta: Tensor) -> Tensor:
    """Per-sample L2 norm over all non-batch dimensions, shape (B,)."""
    return delta.flatten(1).norm(dim=1)


def rescale_to_ball(delta: Tensor, budget: float) -> Tensor:
    """Shrink every δ with ‖δ‖₂ > λ onto the sphere of radius λ; leave the others unchanged.

    This is the authors' hard-constraint rescale (``official-code-spec.md`` §7.1) and also the Euclidean projection
    onto the ball. It is differentiable, so gradients can flow through it inside an objective.

    Args:
        delta: Perturbations (B, ...).
        budget: λ ≥ 0.
    """
    norms = l2_norms(delta).clamp_min(_TINY)
    scale = torch.clamp(budget / norms, max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


def clamp_box(x: Tensor, delta: Tensor) -> Tensor:
    """The perturbation that keeps x + δ inside [0, 1] pixel by pixel: clamp(x + δ, 0, 1) − x."""
    return torch.clamp(x + delta, 0.0, 1.0) - x


def project(x: Tensor, delta: Tensor, budget: float) -> Tensor:
    """A feasible point for both constraints: box clamp, then shrink onto the ball.

    Shrinking towards 0 keeps the box because 0 lies in every pixel's interval [−x, 1 − x], so the result satisfies
    both constraints (it is not the exact Euclidean projection onto the intersection, which has no closed form).
    """
    return rescale_to_ball(clamp_box(x, delta), budget)


def sample_d_ball(
    shape: tuple[int, ...], budget: float, generator: torch.Generator | None = None, device: torch.device | None = None
) -> Tensor:
    """Random starts as the authors' ``sample_d_ball``: a uniform direction with norm U^{1/d} · Uniform(1e-8, λ).

    With d ≥ 100 pixels U^{1/d} ≈ 1, so the norm is close to Uniform(0, λ). Draws happen on the CPU with
    ``generator`` so that a seed gives the same starts on every device.

    Args:
        shape: (B, C, H, W).
        budget: λ.
        generator: CPU random generator (None: the global one).
        device: Where the result goes.
    """
    batch, d = shape[0], math.prod(shape[1:])
    u = torch.randn(batch, d, generator=generator, dtype=torch.float32)
    direction = u / u.norm(dim=1, keepdim=True).clamp_min(_TINY)
    radial = torch.rand(batch, generator=generator) ** (1.0 / d)
    radius = radial * (1e-8 + (budget - 1e-8) * torch.rand(batch, generator=generator))
    return (direction * radius[:, None]).view(shape).to(device)


def sample_sphere(
    shape: tuple[int, ...], budget: float, generator: torch.Generator | None = None, device: torch.device | None = None
) -> Tensor:
    """A uniform random direction scaled to norm exactly λ, shape ``shape`` (drawn on the CPU, like above)."""
    u = torch.randn(shape[0], math.prod(shape[1:]), generator=generator, dtype=torch.float32)
    u = u / u.norm(dim=1, keepdim=True).clamp_min(_TINY) * budget
    return u.view(shape).to(device)
