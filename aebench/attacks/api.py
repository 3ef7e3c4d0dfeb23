"""``run_attack``: the one entry point of the attacks of Saseendran et al. (NeurIPS 2022, eq. 12 and 13).

An attack is an objective from :data:`~aebench.attacks.objectives.ATTACKS` (``latent``, ``max_damage``) minimised
by an optimizer from :data:`OPTIMIZERS`:

- ``lbfgs``: the paper's L-BFGS-B protocol (Byrd et al. 1995), batched (:mod:`aebench.attacks.lbfgs`);
- ``pgd``: projected gradient descent with restarts (Madry et al. 2018) (:mod:`aebench.attacks.pgd`);
- ``apgd``: Auto-PGD, adaptive step size and momentum (Croce & Hein 2020) (:mod:`aebench.attacks.apgd`);
- ``ensemble``: per image, the worst case over several optimizers (:mod:`aebench.attacks.ensemble`);
- ``noise``: a random perturbation of the same budget, the baseline every real attack must beat.

All images and trials of a call are attacked as one batch: the caller stacks (image, trial) pairs, and every row
gets its own random start from ``generator``.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

# The optimizer modules register themselves in OPTIMIZERS when imported (the only reason they are imported here).
from aebench.attacks import apgd, ensemble, lbfgs, noise, pgd  # noqa: F401
from aebench.attacks._problem import OPTIMIZERS, AttackProblem, OptimizerOutput
from aebench.attacks.feasible import project
from aebench.attacks.objectives import ATTACKS
from aebench.models.base import AutoEncoder
from aebench.utils import eval_mode

#: The optimizer used when a call or suite names none. Measured with benchmarks/attack_throughput.py (FC gmm_dae on
#: Fashion-MNIST, 1000 pairs, λ ∈ {1, 3}, both attacks): pgd with its defaults is 29–67× faster than the authors'
#: per-image L-BFGS-B loop and reaches an equal (latent, within 0.03%) or better (max damage, 0.6–1.3%) mean objective.
#: Name ``lbfgs`` to reproduce the paper's optimizer (scipy's L-BFGS-B per image; ``results/attack_throughput``).
DEFAULT_OPTIMIZER = "pgd"
#: The paper's budgets λ (L2 over all pixels, [0, 1] units).
DEFAULT_BUDGETS: tuple[float, ...] = (1.0, 3.0, 5.0)


@dataclass
class AttackResult:
    """The outcome of one batched attack.

    Attributes:
        x_adv: Adversarial images x + δ (B, C, H, W), in [0, 1] with ‖δ‖₂ ≤ λ per image.
        objective: (B,) objective at ``x_adv`` (the authors' "attack loss": ‖g(x_a) − g(x_t)‖ for the latent attack,
            −‖f(g(x_a)) − f(g(x))‖ for maximum damage); lower means a stronger attack.
        trace: (steps, B) objective per optimizer step when requested, else None.
        info: Counters: ``iterations`` and ``grad_evals``/``value_evals`` (rows evaluated with/without gradient).
        capped: (B,) True where the optimizer's iteration cap stopped a row that was still improving (None: the
            optimizer has no cap that can cut a row short).
        members: For ``ensemble``, each member's objective per row.
    """

    x_adv: Tensor
    objective: Tensor
    trace: Tensor | None = None
    info: dict[str, int] = field(default_factory=dict)
    capped: Tensor | None = None
    members: dict[str, Tensor] = field(default_factory=dict)


def optimizer_options(optimizer: str) -> dict[str, object]:
    """The options an optimizer accepts, with their defaults."""
    fn = OPTIMIZERS[optimizer]
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "return_trace"
    }


def _check_options(optimizer: str, options: dict[str, object]) -> None:
    accepted = optimizer_options(optimizer)
    for name in options:
        if name not in accepted:
            close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            listing = ", ".join(accepted) or "none"
            raise ValueError(f"Unknown option {name!r} for attack optimizer {optimizer!r}.{hint} Accepted: {listing}.")


def _check_images(name: str, images: object, model: AutoEncoder) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}.")
    if images.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {images.dtype}.")
    expected = getattr(model, "image_shape", None)
    if expected is not None and tuple(images.shape[1:]) != tuple(expected):
        raise ValueError(f"{name} has images of shape {tuple(images.shape[1:])}, but the model reads "
                         f"{tuple(expected)}.")
    if images.numel() and not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(
            f"{name} must lie in [0, 1] (the budget is in [0, 1] pixel units); got values in "
            f"[{images.min().item():.3g}, {images.max().item():.3g}]."
        )
    return images


def _check_budget(budget: object) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) and not (
        isinstance(budget, Tensor) and budget.numel() == 1
    ):
        raise TypeError(f"budget must be a number (an L2 norm in [0, 1] pixel units), got {budget!r}.")
    value = float(budget)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"budget must be a finite number ≥ 0 (an L2 norm in [0, 1] pixel units), got {budget!r}.")
    return value


def run_attack(
    model: AutoEncoder,
    x: Tensor,
    *,
    attack: str,
    budget: float,
    optimizer: str = DEFAULT_OPTIMIZER,
    target: Tensor | None = None,
    generator: torch.Generator | None = None,
    return_trace: bool = False,
    progress: Callable[[int, int], None] | None = None,
    **optimizer_options: object,
) -> AttackResult:
    """Attack a batch of images within the L2 budget λ and the [0, 1] box.

    Args:
        model: The autoencoder; it is attacked in eval mode and its mode is restored afterwards. Parameter gradients
            are never touched.
        x: Clean images (B, C, H, W) in [0, 1]; stack (image, trial) pairs to run trials in one batch.
        attack: ``"latent"`` (eq. 12) or ``"max_damage"`` (eq. 13).
        budget: λ ≥ 0, the L2 norm of δ over all pixels of an image. λ = 0 returns x unchanged.
        optimizer: ``"pgd"`` (default), ``"lbfgs"`` (the paper's) or ``"noise"``.
        target: Target images x_t, same shape as x (latent attack only).
        generator: CPU generator for the random starts; the same seed gives the same result.
        return_trace: Also return the objective per optimizer step.
        progress: Called as ``progress(done, total)`` after each optimizer iteration.
        **optimizer_options: Passed to the optimizer (see :func:`optimizer_options`), e.g. ``max_iter`` for lbfgs,
            ``steps``/``restarts`` for pgd.

    Returns:
        The adversarial images, the per-image objective and optionally the trace.

    Raises:
        ValueError: On a negative or non-finite budget, an unknown attack/optimizer/option (with close matches),
            a missing or mismatched target, or images of the wrong shape or range.
    """
    objective = ATTACKS[attack]
    optimize = OPTIMIZERS[optimizer]
    _check_options(optimizer, optimizer_options)
    lam = _check_budget(budget)
    x = _check_images("x", x, model)
    if objective.needs_target:
        if target is None:
            raise ValueError(f"The {attack!r} attack needs target images: pass target=x_t with the shape of x.")
        target = _check_images("target", target, model)
        if target.shape != x.shape:
            raise ValueError(f"target must have the shape of x {tuple(x.shape)}, got {tuple(target.shape)}.")
        target = target.to(x.device, x.dtype)
    elif target is not None:
        raise ValueError(f"The {attack!r} attack takes no target; pass target=None.")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (random starts are drawn on the CPU).")

    x = x.detach()
    with eval_mode(model):
        with torch.no_grad():
            reference = objective.reference(model, x, target)
        problem = AttackProblem(model=model, x=x, budget=lam, objective=objective, reference=reference,
                                generator=generator, on_progress=progress)
        if lam == 0.0 or x.shape[0] == 0:
            out = OptimizerOutput(delta=torch.zeros_like(x))
        else:
            out = optimize(problem, return_trace=return_trace, **optimizer_options)
        # Optimizers return feasible δ; this final projection only removes float rounding at the boundary.
        x_adv = (x + project(x, out.delta.detach(), lam)).clamp(0.0, 1.0) if lam > 0 else x.clone()
        final = problem.value(x_adv - x)
    trace = out.trace if return_trace else None
    if return_trace and trace is None:
        trace = final[None]
    info = {"iterations": out.iterations, "grad_evals": problem.grad_rows, "value_evals": problem.value_rows}
    return AttackResult(x_adv=x_adv, objective=final, trace=trace, info=info, capped=out.capped, members=out.members)
