"""The feasible set of every attack: the L2 ball ‖δ‖₂ ≤ λ intersected with the box x + δ ∈ [0, 1].

The budget is an L2 norm over all pixels of one image, in [0, 1] pixel units (Saseendran et al., NeurIPS 2022,
eq. 12–13). Every function works per sample on a batch of perturbations (B, ...).

:func:`project` is the exact Euclidean projection onto the intersection. Its KKT conditions give the solution the
form δ(t) = clip(t·v, −x, 1 − x) for one scalar t ∈ (0, 1] per image (t = 1 / (1 + μ) with μ the multiplier of the
ball), and ‖δ(t)‖ grows with t: if the box projection clip(v) already lies in the ball, t = 1; otherwise t is the
root of ‖δ(t)‖ = λ, found by safeguarded Newton steps. :func:`clamp_then_shrink`, the box clamp followed by a
shrink onto the ball, is feasible too but not the nearest point: it moves saturated pixels twice.
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


def clamp_then_shrink(x: Tensor, delta: Tensor, budget: float) -> Tensor:
    """A feasible point for both constraints: box clamp, then shrink onto the ball (not the nearest one).

    Shrinking towards 0 keeps the box because 0 lies in every pixel's interval [−x, 1 − x].
    """
    return rescale_to_ball(clamp_box(x, delta), budget)


_NEWTON_STEPS = 30  # a cap only: four or five steps reach the tolerance on image batches
_TOLERANCE = 1e-6  # relative accuracy of ‖δ‖² at the root


def project(x: Tensor, delta: Tensor, budget: float) -> Tensor:
    """The exact Euclidean projection of δ onto {δ : ‖δ‖₂ ≤ λ, 0 ≤ x + δ ≤ 1}, per image (module docstring).

    g(t) = ‖clip(t·v)‖² grows with t (each pixel follows t·vᵢ until it reaches its bound, then stays), so the root of
    g(t) = λ² is found by Newton steps on g, each kept inside the bracket [low, high] of a feasible and an infeasible
    t (a bisection step replaces a Newton step that leaves it). Starting from t = λ/‖v‖, where t·v itself has norm λ
    and clipping can only shorten it, three or four steps usually reach float precision.

    Args:
        x: Clean images (B, ...) in [0, 1].
        delta: Perturbations to project, same shape.
        budget: λ ≥ 0.
    """
    lo, hi = (-x).flatten(1), (1.0 - x).flatten(1)
    v = delta.flatten(1)
    boxed = torch.clamp(v, lo, hi)
    outside = boxed.norm(dim=1) > budget
    if outside.any():
        boxed[outside] = _ball_box_root(v[outside], lo[outside], hi[outside], budget)
    return boxed.view_as(delta)


def _ball_box_root(v: Tensor, lo: Tensor, hi: Tensor, budget: float) -> Tensor:
    """clip(t·v) with ‖clip(t·v)‖ = λ, for rows whose box projection (t = 1) lies outside the ball."""
    target = budget**2
    low = (budget / v.norm(dim=1).clamp_min(_TINY)).clamp(max=1.0)  # g(low) ≤ λ²
    high = torch.ones_like(low)  # g(1) > λ² for these rows
    t = low.clone()
    squares = v * v
    for _ in range(_NEWTON_STEPS):
        scaled = t[:, None] * v
        point = torch.clamp(scaled, lo, hi)
        g = torch.linalg.vecdot(point, point)
        feasible = g <= target
        low, high = torch.where(feasible, t, low), torch.where(feasible, high, t)
        # A row within the tolerance keeps its t: one more step would move it by less than the tolerance, and a
        # step that rounding pushes out of the bracket would fall back to bisection and undo the convergence.
        converged = (g - target).abs() <= _TOLERANCE * target
        if bool(converged.all()):
            break
        # g'(t) = 2t · Σ vᵢ² over the pixels still inside their bounds (where clipping left t·vᵢ unchanged).
        slope = 2.0 * t * torch.where(point == scaled, squares, 0.0).sum(dim=1)
        step = t + (target - g) / slope.clamp_min(1e-30)
        step = torch.where((step > low) & (step < high), step, 0.5 * (low + high))
        t = torch.where(converged, t, step)
    result = torch.clamp(t[:, None] * v, lo, hi)
    # The last step may leave ‖δ‖ a hair above λ; shrinking towards 0 keeps the box.
    norms = result.norm(dim=1, keepdim=True)
    return result * torch.clamp(budget / norms.clamp_min(_TINY), max=1.0)


def descent_direction(x: Tensor, delta: Tensor, grad: Tensor) -> Tensor:
    """The unit-L2 direction of steepest descent that stays in the box, per image.

    At a pixel already at 0 (or 1) a step along −∇ that pushes it further down (or up) would be clipped away by the
    projection and only shorten the useful part of the step; on images with many saturated pixels (about 40% of
    MNIST-like pixels sit at 0) that is most of it. Those components are dropped before normalising.
    """
    point = x + delta
    step = -grad
    blocked = ((point <= 0) & (step < 0)) | ((point >= 1) & (step > 0))
    step = torch.where(blocked, torch.zeros_like(step), step)
    norms = step.flatten(1).norm(dim=1).clamp_min(1e-30)
    return step / norms.view(-1, *([1] * (step.dim() - 1)))


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
