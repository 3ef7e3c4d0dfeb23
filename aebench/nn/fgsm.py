"""One-step FGSM with a uniform random start (Wong, Rice & Kolter, "Fast is better than free", ICLR 2020).

Used for adversarial training in the robust GMM-DAE (Saseendran et al., NeurIPS 2022, eq. 6): the
perturbation maximises the latent displacement ‖g(x+δ) − g(x)‖² in an L∞ ball (spec §5).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def fgsm_latent(
    encode: Callable[[Tensor], Tensor],
    x: Tensor,
    epsilon: float,
    step_size: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Craft x_adv = clamp(x + δ, 0, 1) with one signed-gradient step from a random start.

    Args:
        encode: The encoder g.
        x: Clean images in [0, 1].
        epsilon: L∞ radius of the perturbation.
        step_size: Size of the signed step (the authors use 1.25·ε).
        generator: Source of the random start.

    Returns:
        Detached adversarial images in [0, 1]; gradients reach the encoder only when the caller
        encodes them again.
    """
    with torch.no_grad():
        z_clean = encode(x)
    # Drawn on the generator's device, then moved: a CPU generator works for a model on any device.
    where = generator.device if generator is not None else x.device
    start = torch.rand(x.shape, generator=generator, device=where, dtype=x.dtype).to(x.device)
    delta = ((2 * start - 1) * epsilon).requires_grad_(True)
    displacement = (encode(x + delta) - z_clean).pow(2).mean()
    # autograd.grad touches only δ, so crafting never leaves gradients on the model's parameters.
    (grad,) = torch.autograd.grad(displacement, delta)
    with torch.no_grad():
        delta = (delta + step_size * grad.sign()).clamp(-epsilon, epsilon)
        return (x + delta).clamp(0.0, 1.0)
