"""L-Lipschitz MLPs from Björck-orthonormalised linear layers and GroupSort activations.

- Björck & Bowie, "An iterative algorithm for computing the best estimate of an orthogonal matrix",
  SIAM J. Numer. Anal. 1971; used for networks by Anil, Lucas & Grosse, "Sorting out Lipschitz function
  approximation", ICML 2019 (https://arxiv.org/abs/1811.05381), which also introduced GroupSort.
- The VAE use (three such MLPs, a fixed per-layer scale L^(1/n)): Barrett, Camuto, Willetts & Rainforth,
  "Certifiably Robust Variational Autoencoders", AISTATS 2022 (https://arxiv.org/abs/2102.07559).

Every layer's weight is orthonormalised inside the forward pass (differentiable, a few iterations in
training); in eval mode the layer caches a well-converged orthonormal weight, so attacks and metrics
cost what a plain MLP costs. :meth:`LipschitzMLP.export` bakes those weights into ``nn.Linear`` layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BJORCK_BETA = 0.5  # order-1 Björck: W ← (1 + β)W − β·W WᵀW with β = ½ (Barrett et al.'s setting)


def bjorck_orthonormalize(weight: Tensor, iterations: int, beta: float = BJORCK_BETA) -> Tensor:
    """Drive every singular value of ``weight`` to 1 with order-1 Björck iterations (differentiable).

    The iteration maps a singular value s to (1 + β)s − βs³, whose maximum over s ≥ 0 is 1 (at s = 1);
    so after one iteration the spectral norm is ≤ 1 whenever the input's is below about 2, and every
    further iteration tightens it. It runs on the smaller Gram matrix (``min(out, in)`` squared).
    """
    wide = weight.shape[0] <= weight.shape[1]
    w = weight if wide else weight.t()
    for _ in range(iterations):
        w = (1.0 + beta) * w - beta * (w @ w.t()) @ w
    return w if wide else w.t()


class BjorckLinear(nn.Module):
    """A linear layer whose weight is Björck-orthonormalised in every forward pass.

    Args:
        in_features: Input size.
        out_features: Output size.
        iterations: Björck iterations in training mode (Barrett et al.'s scripts: 3).
        eval_iterations: Iterations of the cached weight used in eval mode (their export: 50).
    """

    def __init__(self, in_features: int, out_features: int, iterations: int = 3, eval_iterations: int = 50) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.iterations, self.eval_iterations = int(iterations), int(eval_iterations)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        # Orthogonal with gain 1: the raw weight starts at Björck's fixed point, so 3 iterations suffice.
        nn.init.orthogonal_(self.weight)
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -bound, bound)
        self._cache: tuple[tuple[int, int, int, str], Tensor] | None = None

    def orthonormal_weight(self, iterations: int | None = None) -> Tensor:
        """The orthonormalised weight (differentiable), with ``iterations`` (default: training's)."""
        return bjorck_orthonormalize(self.weight, self.iterations if iterations is None else iterations)

    def baked_weight(self) -> Tensor:
        """The eval-mode weight: ``eval_iterations`` Björck steps, detached and cached until the weight changes."""
        w = self.weight
        key = (w._version, w.data_ptr(), self.eval_iterations, f"{w.device}{w.dtype}")
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, bjorck_orthonormalize(w.detach(), self.eval_iterations))
        return self._cache[1]

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        weight = self.orthonormal_weight() if self.training else self.baked_weight()
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:  # noqa: D102
        return f"in={self.in_features}, out={self.out_features}, iterations={self.iterations}/{self.eval_iterations}"


class GroupSort(nn.Module):
    """Sort features within consecutive groups (group size 2 = MaxMin): 1-Lipschitz, gradient-norm preserving."""

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be ≥ 1, got {group_size}.")
        self.group_size = int(group_size)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        if x.shape[-1] % self.group_size:
            raise ValueError(f"GroupSort({self.group_size}) needs a feature count divisible by it, got {x.shape[-1]}.")
        groups = x.unflatten(-1, (-1, self.group_size))
        return groups.sort(dim=-1, descending=True).values.flatten(-2)


class LipschitzMLP(nn.Module):
    """An L-Lipschitz (in L2) MLP: Björck layers, each followed by a fixed scale L^(1/n), GroupSort between.

    Args:
        widths: Layer sizes, input first (n = len(widths) − 1 linear layers).
        lipschitz: The network's Lipschitz constant L (> 0).
        group_size: GroupSort group size.
        iterations: Björck iterations in training.
        eval_iterations: Björck iterations of the eval-mode (and exported) weights.
    """

    def __init__(
        self,
        widths: Sequence[int],
        lipschitz: float,
        group_size: int = 2,
        iterations: int = 3,
        eval_iterations: int = 50,
    ) -> None:
        super().__init__()
        if len(widths) < 2 or not lipschitz > 0:
            raise ValueError(f"need at least two widths and lipschitz > 0, got {list(widths)}, {lipschitz}.")
        self.lipschitz = float(lipschitz)
        self.layers = nn.ModuleList(
            BjorckLinear(a, b, iterations, eval_iterations) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.scale = self.lipschitz ** (1.0 / len(self.layers))
        self.activation = GroupSort(group_size)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        for i, layer in enumerate(self.layers):
            if i:
                x = self.activation(x)
            x = self.scale * layer(x)
        return x

    def export(self) -> nn.Sequential:
        """A plain ``nn.Sequential`` of ``nn.Linear`` + GroupSort with the baked, scaled weights."""
        modules: list[nn.Module] = []
        for i, layer in enumerate(self.layers):
            if i:
                modules.append(GroupSort(self.activation.group_size))
            linear = nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(self.scale * layer.baked_weight())
                linear.bias.copy_(self.scale * layer.bias)
            modules.append(linear)
        return nn.Sequential(*modules)


__all__ = ["BjorckLinear", "GroupSort", "LipschitzMLP", "bjorck_orthonormalize"]
