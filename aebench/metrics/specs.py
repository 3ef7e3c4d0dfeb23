"""The metric registry the suite runner evaluates after each attack.

Every metric maps an :class:`AttackOutcome` (one attacked batch) to one value per image and says which attack kinds
it applies to and in which direction it means "more robust". The set mirrors what Saseendran et al., "Trading off
Image Quality for Robustness is not Necessary with Regularized Deterministic Autoencoders" (NeurIPS 2022) report in
Table 1, Figure 2 and the appendix, computed as in the authors' attack scripts (``official-code-spec.md`` §7.1–7.3).

Notation (the paper's): x clean input, x_a = x + δ adversarial input, x̃_r = f(g(x)) clean reconstruction,
x̃_a = f(g(x_a)) adversarial reconstruction, x_t latent-attack target. In Table 1 "x_r" is the reference image: the
target x_t in the latent column MSSSIM(x_r, x̃_a), and the clean input x in the MSSSIM(x_r, x_a) columns.

Registered names (attack kinds in brackets; ↑ higher is more robust, ↓ lower is more robust):

==================================  ======================  ==  ==================================================
name                                attacks                     value
==================================  ======================  ==  ==================================================
``attack_loss``                     latent, max_damage      ↑   final attack objective: ‖g(x_a) − g(x_t)‖ (latent),
                                                                −‖f(g(x_a)) − f(g(x))‖ (max damage), as Fig. 2
``l2_target_adv_recon``             latent                  ↑   ‖x_t − x̃_a‖ (the authors' ``recon_dist``)
``l2_recon_adv_recon``              latent, max_damage      ↓   ‖x̃_r − x̃_a‖ (max damage: ``recon_dist``)
``l2_input_adv``                    latent, max_damage      ↑   ‖x − x_a‖, the perturbation actually used (≤ λ)
``msssim_paper_target_adv_recon``   latent                  ↓   Table 1 latent MSSSIM(x_r, x̃_a), x_r = x_t
``msssim_paper_input_adv``          latent, max_damage      ↓   Table 1 MSSSIM(x_r, x_a), x_r = x
``msssim_paper_recon_adv_recon``    max_damage              ↑   Table 1 max-damage MSSSIM(x̃_r, x̃_a)
``msssim_target_adv_recon``         latent                  ↓   as ``msssim_paper_*`` with the standard MS-SSIM
``msssim_input_adv``                latent, max_damage      ↓
``msssim_recon_adv_recon``          max_damage              ↑
==================================  ======================  ==  ==================================================

``msssim_paper_*`` use :func:`~aebench.metrics.msssim.msssim_paper` (the implementation behind the paper's numbers)
with the authors' argument order; ``msssim_*`` use the standard :func:`~aebench.metrics.msssim.msssim`. Only the
paper variants carry ``paper_column``, so a rendered Table 1 takes its values from the implementation the paper used.

Directions: the paper's arrows mark lower similarity of x̃_a to the target as better (↓) and higher similarity of x̃_a
to x̃_r as better (↑). It also marks MSSSIM(x_r, x_a) ↓: an attack that had to change the input more is the sign of
a more robust model; ``l2_input_adv`` is marked ↑ to agree with it. Under the fixed budget λ both input metrics
are mostly diagnostics (the L-BFGS attack spends the whole budget).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

from aebench.metrics.distances import l2_distance
from aebench.metrics.msssim import msssim, msssim_paper
from aebench.registry import Registry

#: Attack kinds a metric can apply to. Noise baselines report under the kind they imitate.
ATTACK_KINDS: tuple[str, ...] = ("latent", "max_damage")


def _check_attack(attack: str) -> None:
    if attack not in ATTACK_KINDS:
        raise ValueError(f"Unknown attack kind {attack!r}; expected one of {', '.join(map(repr, ATTACK_KINDS))}.")


@dataclass(frozen=True)
class AttackOutcome:
    """Everything a metric may need about one attacked batch.

    Attributes:
        attack: ``"latent"`` or ``"max_damage"`` (noise baselines use the kind they imitate).
        x: Clean inputs (B, C, H, W) in [0, 1].
        x_adv: Adversarial inputs x_a, same shape.
        recon: Clean reconstructions x̃_r = f(g(x)).
        adv_recon: Adversarial reconstructions x̃_a = f(g(x_a)).
        objective: (B,) final attack objective ("attack loss").
        target: Latent-attack target images x_t (latent attack only).
        target_recon: Reconstructions of the targets f(g(x_t)) (latent attack only, optional).

    Raises:
        ValueError: On an unknown attack kind or tensors whose shapes do not agree.
    """

    attack: str
    x: Tensor
    x_adv: Tensor
    recon: Tensor
    adv_recon: Tensor
    objective: Tensor
    target: Tensor | None = None
    target_recon: Tensor | None = None

    def __post_init__(self) -> None:
        # Checked once here so that every metric can trust the shapes (a mismatch would otherwise surface as a
        # broadcasting surprise or a confusing error deep inside a convolution).
        _check_attack(self.attack)
        if self.x.dim() != 4:
            raise ValueError(f"AttackOutcome.x must have shape (B, C, H, W), got {tuple(self.x.shape)}.")
        for name in ("x_adv", "recon", "adv_recon", "target", "target_recon"):
            value = getattr(self, name)
            if value is not None and value.shape != self.x.shape:
                raise ValueError(
                    f"AttackOutcome.{name} has shape {tuple(value.shape)}, but x has shape {tuple(self.x.shape)}."
                )
        if self.objective.shape != self.x.shape[:1]:
            raise ValueError(
                f"AttackOutcome.objective must have shape ({self.x.shape[0]},) (one value per image), "
                f"got {tuple(self.objective.shape)}."
            )

    @property
    def batch_size(self) -> int:
        """Number of images B."""
        return int(self.x.shape[0])


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    Attributes:
        name: Registry name (lower_snake).
        fn: Maps an :class:`AttackOutcome` to per-image values (B,).
        higher_is_better: Direction in the robustness sense of the paper's Table 1 arrows.
        attacks: Attack kinds the metric applies to.
        description: What it computes, in the paper's notation.
        paper_column: Where the paper reports it (None for metrics the paper has no column for).
    """

    name: str
    fn: Callable[[AttackOutcome], Tensor]
    higher_is_better: bool
    attacks: tuple[str, ...]
    description: str
    paper_column: str | None = None

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ValueError(f"Metric {self.name!r} applies to no attack kind.")
        for attack in self.attacks:
            _check_attack(attack)

    def applies_to(self, attack: str) -> bool:
        """Whether this metric is defined for ``attack``."""
        return attack in self.attacks

    def __call__(self, outcome: AttackOutcome) -> Tensor:
        """Evaluate on ``outcome``.

        Raises:
            ValueError: If the metric does not apply to ``outcome.attack``.
        """
        if not self.applies_to(outcome.attack):
            raise ValueError(
                f"Metric {self.name!r} applies to {', '.join(self.attacks)} attacks, not {outcome.attack!r}."
            )
        return self.fn(outcome)


METRICS: Registry[MetricSpec] = Registry("metric")
_ORDER: list[str] = []  # registration order: the natural column order of result tables


def _register(spec: MetricSpec) -> MetricSpec:
    METRICS.add(spec.name, spec)
    _ORDER.append(spec.name)
    return spec


def metrics_for(attack: str, names: Sequence[str] | None = None) -> list[MetricSpec]:
    """The metrics to evaluate after an attack of kind ``attack``.

    Args:
        attack: ``"latent"`` or ``"max_damage"``.
        names: Metric names to choose from (e.g. a suite's list, shared by both attacks); those that do not apply
            to ``attack`` are left out. Default: every registered metric, in registration order.

    Returns:
        The applicable specs, in the order of ``names`` (or of registration).

    Raises:
        ValueError: On an unknown attack kind.
        aebench.registry.UnknownNameError: On an unknown metric name (the message suggests close matches).
    """
    _check_attack(attack)
    if names is None:
        chosen = [METRICS[n] for n in _ORDER if n in METRICS] + [METRICS[n] for n in METRICS if n not in _ORDER]
    else:
        if isinstance(names, str):  # a bare string would otherwise be read letter by letter
            names = [names]
        chosen = [METRICS[n] for n in dict.fromkeys(names)]
    return [spec for spec in chosen if spec.applies_to(attack)]


# ---------------------------------------------------------------------------------------------------------------
# the metrics
# ---------------------------------------------------------------------------------------------------------------


def _target(o: AttackOutcome) -> Tensor:
    if o.target is None:
        raise ValueError(f"This metric needs the latent-attack target image, but the {o.attack!r} outcome has none.")
    return o.target


def _attack_loss(o: AttackOutcome) -> Tensor:
    return o.objective


def _l2_target_adv_recon(o: AttackOutcome) -> Tensor:
    return l2_distance(_target(o), o.adv_recon)


def _l2_recon_adv_recon(o: AttackOutcome) -> Tensor:
    return l2_distance(o.recon, o.adv_recon)


def _l2_input_adv(o: AttackOutcome) -> Tensor:
    return l2_distance(o.x, o.x_adv)


# Paper variants: argument order as in the authors' scripts (spec §7.1/7.2). msssim_paper is symmetric except for
# the data range, which it guesses from its first argument; for images in [0, 1] the order does not change values.
def _msssim_paper_target_adv_recon(o: AttackOutcome) -> Tensor:
    return msssim_paper(o.adv_recon, _target(o))  # latentspaceattack.py: msssim(f(g(x+δ)), x_t)


def _msssim_paper_input_adv(o: AttackOutcome) -> Tensor:
    if o.attack == "latent":
        return msssim_paper(o.x_adv, o.x)  # latentspaceattack.py: inpmsssim = msssim(x+δ, x)
    return msssim_paper(o.x, o.x_adv)  # outputattack.py: MSSSIM = msssim(x, x+δ)


def _msssim_paper_recon_adv_recon(o: AttackOutcome) -> Tensor:
    return msssim_paper(o.adv_recon, o.recon)  # outputattack.py: out MSSSIM = msssim(f(g(x+δ)), f(g(x)))


def _msssim_target_adv_recon(o: AttackOutcome) -> Tensor:
    return msssim(o.adv_recon, _target(o))


def _msssim_input_adv(o: AttackOutcome) -> Tensor:
    return msssim(o.x_adv, o.x)


def _msssim_recon_adv_recon(o: AttackOutcome) -> Tensor:
    return msssim(o.adv_recon, o.recon)


_BOTH = ATTACK_KINDS
_LATENT = ("latent",)
_MAX_DAMAGE = ("max_damage",)
_STD = "standard MS-SSIM (Wang et al. 2003; 11-tap σ=1.5, scales fitted to the image size, torchmetrics-compatible)"
_PAPER = "MS-SSIM as the paper computed it (jorge-pessoa pytorch_msssim, window 6, relu, 5 scales)"

_register(
    MetricSpec(
        name="attack_loss",
        fn=_attack_loss,
        higher_is_better=True,
        attacks=_BOTH,
        description=(
            "Final attack objective: latent ‖g(x_a) − g(x_t)‖₂ (the attacker minimises it); max damage "
            "−‖f(g(x_a)) − f(g(x))‖₂ (the attacker minimises it). Higher means the attack achieved less."
        ),
        paper_column="Figure 2: attack loss",
    )
)
_register(
    MetricSpec(
        name="l2_target_adv_recon",
        fn=_l2_target_adv_recon,
        higher_is_better=True,
        attacks=_LATENT,
        description="‖x_t − x̃_a‖₂: distance of the adversarial reconstruction from the target, [0, 1] pixel units",
        paper_column="Appendix: latent l2 distance (recon_dist)",
    )
)
_register(
    MetricSpec(
        name="l2_recon_adv_recon",
        fn=_l2_recon_adv_recon,
        higher_is_better=False,
        attacks=_BOTH,
        description="‖x̃_r − x̃_a‖₂: how far the attack moved the reconstruction, [0, 1] pixel units",
        paper_column="Appendix: max-damage l2 distance (recon_dist)",
    )
)
_register(
    MetricSpec(
        name="l2_input_adv",
        fn=_l2_input_adv,
        higher_is_better=True,
        attacks=_BOTH,
        description="‖x − x_a‖₂: size of the input perturbation used (≤ λ), [0, 1] pixel units",
    )
)
_register(
    MetricSpec(
        name="msssim_paper_target_adv_recon",
        fn=_msssim_paper_target_adv_recon,
        higher_is_better=False,
        attacks=_LATENT,
        description=f"MS-SSIM(x_r, x̃_a), x_r = target x_t; {_PAPER}, called as msssim_paper(x̃_a, x_t)",
        paper_column="Table 1: latent MSSSIM(x_r, x̃_a)",
    )
)
_register(
    MetricSpec(
        name="msssim_paper_input_adv",
        fn=_msssim_paper_input_adv,
        higher_is_better=False,
        attacks=_BOTH,
        description=(
            f"MS-SSIM(x_r, x_a), x_r = clean input x; {_PAPER}, called as msssim_paper(x_a, x) after the latent "
            "attack and msssim_paper(x, x_a) after the max-damage attack"
        ),
        paper_column="Table 1: MSSSIM(x_r, x_a)",
    )
)
_register(
    MetricSpec(
        name="msssim_paper_recon_adv_recon",
        fn=_msssim_paper_recon_adv_recon,
        higher_is_better=True,
        attacks=_MAX_DAMAGE,
        description=f"MS-SSIM(x̃_r, x̃_a); {_PAPER}, called as msssim_paper(x̃_a, x̃_r)",
        paper_column="Table 1: max-damage MSSSIM(x̃_r, x̃_a)",
    )
)
_register(
    MetricSpec(
        name="msssim_target_adv_recon",
        fn=_msssim_target_adv_recon,
        higher_is_better=False,
        attacks=_LATENT,
        description=f"MS-SSIM(x_r, x̃_a), x_r = target x_t; {_STD}",
    )
)
_register(
    MetricSpec(
        name="msssim_input_adv",
        fn=_msssim_input_adv,
        higher_is_better=False,
        attacks=_BOTH,
        description=f"MS-SSIM(x_r, x_a), x_r = clean input x; {_STD}",
    )
)
_register(
    MetricSpec(
        name="msssim_recon_adv_recon",
        fn=_msssim_recon_adv_recon,
        higher_is_better=True,
        attacks=_MAX_DAMAGE,
        description=f"MS-SSIM(x̃_r, x̃_a); {_STD}",
    )
)
