"""One attack instance as the optimizers see it: images, budget, objective, and counted evaluations.

Every optimizer gets an :class:`AttackProblem` and returns perturbations; the problem evaluates the objective of
Saseendran et al. (NeurIPS 2022, eq. 12/13) on any subset of the batch's rows, so an optimizer can stop working on
rows that have converged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from aebench.attacks.feasible import rescale_to_ball, sample_d_ball
from aebench.attacks.objectives import AttackObjective
from aebench.models.base import AutoEncoder
from aebench.registry import Registry


@dataclass
class AttackProblem:
    """The attack on a batch: minimise ``objective`` per row over ‖δ‖₂ ≤ ``budget``, x + δ ∈ [0, 1].

    Attributes:
        model: The autoencoder, already in eval mode.
        x: Clean images (B, C, H, W).
        budget: λ > 0.
        objective: The registered objective.
        reference: z_t (latent) or f(g(x)) (max damage), one row per image.
        generator: CPU generator for random starts.
        start: Perturbations to start the first search from instead of a random point (e.g. to refine a known
            point); later restarts are random.
        on_progress: Called as ``on_progress(done, total)`` by optimizers after each iteration (progress lines).
        grad_rows: Rows evaluated with a gradient so far (for throughput accounting).
        value_rows: Rows evaluated without a gradient so far.
    """

    model: AutoEncoder
    x: Tensor
    budget: float
    objective: AttackObjective
    reference: Tensor
    generator: torch.Generator | None = None
    start: Tensor | None = None
    on_progress: Callable[[int, int], None] | None = None
    grad_rows: int = field(default=0)
    value_rows: int = field(default=0)

    @property
    def batch_size(self) -> int:
        """B, the number of rows (image, trial pairs)."""
        return self.x.shape[0]

    def initial(self, restart: int = 0) -> Tensor:
        """The starting perturbation of a search: :attr:`start` for the first one, else a random point of the ball."""
        if restart == 0 and self.start is not None:
            return self.start.detach().clone()
        return sample_d_ball(tuple(self.x.shape), self.budget, self.generator, self.x.device)

    def report(self, done: int, total: int) -> None:
        """Tell the caller how far the optimizer got (``done`` of at most ``total`` iterations)."""
        if self.on_progress is not None:
            self.on_progress(done, total)

    def _rows(self, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        if rows is None:
            return self.x, self.reference
        return self.x[rows], self.reference[rows]

    def value(self, delta: Tensor, rows: Tensor | None = None) -> Tensor:
        """Per-row objective at x + δ (δ used as given, no rescale), without gradient. Shape (len(rows),)."""
        x, ref = self._rows(rows)
        self.value_rows += x.shape[0]
        with torch.no_grad():
            return self.objective.value(self.model, x + delta.to(x.dtype), ref)

    def value_and_grad(self, delta: Tensor, rows: Tensor | None = None, rescale: bool = False) -> tuple[Tensor, Tensor]:
        """Per-row objective and its gradient w.r.t. δ (only δ: parameter gradients are never accumulated).

        Args:
            delta: Perturbations of the selected rows.
            rows: Row indices into the batch (None: all rows).
            rescale: Evaluate at x + rescale_to_ball(δ), with the gradient flowing through the rescale (the authors'
                L-BFGS-B parametrisation, official-code-spec.md §7.1).

        Returns:
            (values (R,), gradient like ``delta``), both detached.
        """
        x, ref = self._rows(rows)
        self.grad_rows += x.shape[0]
        with torch.enable_grad():
            d = delta.detach().to(x.dtype).requires_grad_(True)
            d_used = rescale_to_ball(d, self.budget) if rescale else d
            values = self.objective.value(self.model, x + d_used, ref)
            (grad,) = torch.autograd.grad(values.sum(), d)
        return values.detach(), grad.to(delta.dtype)


@dataclass
class OptimizerOutput:
    """What an optimizer returns.

    Attributes:
        delta: Final feasible perturbations (B, C, H, W).
        trace: Per-step objective of every row, (steps, B), when requested.
        iterations: Optimizer iterations run (the largest over rows for per-row optimizers).
        capped: (B,) True where a row was still improving when the iteration cap stopped it (None: no cap applies).
        members: For an ensemble, each member's final objective per row (B,), by member name.
    """

    delta: Tensor
    trace: Tensor | None = None
    iterations: int = 0
    capped: Tensor | None = None
    members: dict[str, Tensor] = field(default_factory=dict)


Optimizer = Callable[..., OptimizerOutput]

OPTIMIZERS: Registry[Optimizer] = Registry("attack optimizer")
"""Optimizers by name: ``fn(problem, *, return_trace, **options) -> OptimizerOutput``; each module registers its own."""
