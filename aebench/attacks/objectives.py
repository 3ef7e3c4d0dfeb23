"""The attack objectives of Saseendran et al. (NeurIPS 2022), minimised over ‖δ‖₂ ≤ λ, x + δ ∈ [0, 1].

Saseendran et al., "Trading off Image Quality for Robustness is not Necessary with Regularized Deterministic
Autoencoders" (NeurIPS 2022):

- ``latent`` (eq. 12): ‖g(x + δ) − g(x_t)‖₂, pull the code of the attacked image onto a target's code.
- ``max_damage`` (eq. 13): −‖f(g(x + δ)) − f(g(x))‖₂, push the reconstruction as far as possible from the clean
  one. The value is negative, as the authors' ``attack_losses`` (official-code-spec.md §7.2).

Each objective is registered in :data:`ATTACKS` with the L-BFGS-B history size the authors used for it (m = 25 for
the latent attack, m = 100 for maximum damage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from aebench.metrics.msssim import msssim
from aebench.models.base import AutoEncoder
from aebench.registry import Registry


@dataclass(frozen=True)
class AttackObjective:
    """One attack objective, evaluated per image.

    Attributes:
        name: Registry name.
        description: One line for listings.
        kind: ``latent`` (pull the code towards a target's) or ``max_damage`` (push the reconstruction away): which
            metrics apply to it (:data:`aebench.metrics.ATTACK_KINDS`).
        needs_target: Whether ``run_attack`` must get target images.
        lbfgs_history: The authors' L-BFGS-B memory m for this attack.
        lbfgs_pgtol: The authors' projected-gradient tolerance (scipy's default 1e-5 for the latent attack; 1e-20,
            i.e. never, for maximum damage).
        reference: (model, x, target) → the fixed tensor the objective compares with (z_t or f(g(x))), computed
            once without gradients.
        value: (model, x_adv, reference) → per-image objective (B,), differentiable in x_adv; lower is a stronger
            attack.
        lower_bound: The objective's smallest possible value, if it has one (an image there cannot improve).
    """

    name: str
    description: str
    kind: str
    needs_target: bool
    lbfgs_history: int
    lbfgs_pgtol: float
    reference: Callable[[AutoEncoder, Tensor, Tensor | None], Tensor]
    value: Callable[[AutoEncoder, Tensor, Tensor], Tensor]
    lower_bound: float | None = None


ATTACKS: Registry[AttackObjective] = Registry("attack")
"""Every attack objective, keyed by name (``latent``, ``max_damage``)."""


def _per_sample_l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).norm(dim=1)


def _latent_reference(model: AutoEncoder, x: Tensor, target: Tensor | None) -> Tensor:
    if target is None:  # run_attack checks this first; kept for direct callers
        raise ValueError("The latent attack needs target images x_t.")
    return model.encode(target).detach()


def _latent_value(model: AutoEncoder, x_adv: Tensor, z_target: Tensor) -> Tensor:
    return _per_sample_l2(model.encode(x_adv), z_target)


def _max_damage_reference(model: AutoEncoder, x: Tensor, target: Tensor | None) -> Tensor:
    return model.decode(model.encode(x)).detach()


def _max_damage_value(model: AutoEncoder, x_adv: Tensor, clean_recon: Tensor) -> Tensor:
    return -_per_sample_l2(model.decode(model.encode(x_adv)), clean_recon)


ATTACKS.add(
    "latent",
    AttackObjective(
        name="latent",
        description="latent-space attack, eq. 12: minimise ||g(x+d) - g(x_t)||_2",
        kind="latent",
        needs_target=True,
        lbfgs_history=25,
        lbfgs_pgtol=1e-5,
        reference=_latent_reference,
        value=_latent_value,
        lower_bound=0.0,
    ),
)
ATTACKS.add(
    "max_damage",
    AttackObjective(
        name="max_damage",
        description="maximum-damage attack, eq. 13: minimise -||f(g(x+d)) - f(g(x))||_2",
        kind="max_damage",
        needs_target=False,
        lbfgs_history=100,
        lbfgs_pgtol=1e-20,
        reference=_max_damage_reference,
        value=_max_damage_value,
    ),
)


# ------------------------------------------------------------------------------------------- perceptual attacks
# The tables report MS-SSIM, but eq. 12/13 optimise L2 distances: an attack that is weak in L2 terms can still
# be strong in MS-SSIM terms. These two optimise the reported metric itself (the differentiable standard MS-SSIM;
# the rows carry the paper's msssim_paper of the result as well), within the same budget.


def _latent_msssim_reference(model: AutoEncoder, x: Tensor, target: Tensor | None) -> Tensor:
    if target is None:
        raise ValueError("The latent_msssim attack needs target images x_t.")
    return target.detach()


def _latent_msssim_value(model: AutoEncoder, x_adv: Tensor, target: Tensor) -> Tensor:
    return -msssim(target, model.decode(model.encode(x_adv)))


def _max_damage_msssim_value(model: AutoEncoder, x_adv: Tensor, clean_recon: Tensor) -> Tensor:
    return msssim(clean_recon, model.decode(model.encode(x_adv)))


ATTACKS.add(
    "latent_msssim",
    AttackObjective(
        name="latent_msssim",
        description="perceptual latent attack: maximise MS-SSIM(x_t, f(g(x+d)))",
        kind="latent",
        needs_target=True,
        lbfgs_history=25,
        lbfgs_pgtol=1e-5,
        reference=_latent_msssim_reference,
        value=_latent_msssim_value,
        lower_bound=-1.0,
    ),
)
ATTACKS.add(
    "max_damage_msssim",
    AttackObjective(
        name="max_damage_msssim",
        description="perceptual maximum-damage attack: minimise MS-SSIM(f(g(x)), f(g(x+d)))",
        kind="max_damage",
        needs_target=False,
        lbfgs_history=100,
        lbfgs_pgtol=1e-20,
        reference=_max_damage_reference,
        value=_max_damage_msssim_value,
        lower_bound=0.0,
    ),
)
