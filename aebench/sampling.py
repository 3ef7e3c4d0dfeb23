"""The sampling protocol of a benchmark cell: which test images each trial attacks, their targets, the seeds.

Saseendran et al. (NeurIPS 2022) attack N test images in each of T trials and report mean ± std over trials. The
paper does not say how the images are drawn; aebench's rule (documented in ``docs/protocol.md``):

- trial t of a cell with seed s draws N distinct test images with ``randperm`` seeded by ``derive_seed("trial", s, t)``;
- the latent attack's target for a source image is the next test image (cyclically, in file order) of another class;
  without labels (CelebA) it is a uniformly random other image, as in the authors' scripts;
- every other random draw of a cell (attack starts, noise) is seeded by :func:`derive_seed` of what it belongs to,
  so a measurement gives the same numbers whichever other measurements ran before it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from aebench.data import ImageDataset


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed derived from ``parts`` (Python's ``hash()`` is salted per process)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def trial_indices(n_test: int, n_images: int, n_trials: int, seed: int) -> torch.Tensor:
    """(T, N) test-set indices: each trial draws N distinct images with its own seed.

    Raises:
        ValueError: If ``n_images`` exceeds ``n_test``.
    """
    if n_images > n_test:
        raise ValueError(f"n_images={n_images} exceeds the {n_test} test images; lower n_images in the suite.")
    rows = [torch.randperm(n_test, generator=torch.Generator().manual_seed(derive_seed("trial", seed, t)))[:n_images]
            for t in range(n_trials)]
    return torch.stack(rows)


def target_indices(dataset: ImageDataset, sources: torch.Tensor, seed: int) -> torch.Tensor:
    """The latent attack's target per source: the next test image of another class (cyclically).

    Without labels (CelebA), a uniformly random other image, as in the authors' scripts.
    """
    n = len(dataset)
    flat = sources.reshape(-1)
    if dataset.labels is None:
        generator = torch.Generator().manual_seed(derive_seed("target", seed))
        offset = torch.randint(1, n, flat.shape, generator=generator)
        return ((flat + offset) % n).reshape(sources.shape)
    labels = dataset.labels
    targets = torch.empty_like(flat)
    for i, src in enumerate(flat.tolist()):
        j = (src + 1) % n
        while labels[j] == labels[src]:
            j = (j + 1) % n
        targets[i] = j
    return targets.reshape(sources.shape)


@dataclass(frozen=True)
class CellImages:
    """The attacked images of a cell, trial-major: (T·N) sources, their latent-attack targets and labels."""

    x: torch.Tensor
    target: torch.Tensor
    labels: torch.Tensor | None
    n_trials: int
    n_images: int


def cell_images(test_set: ImageDataset, n_images: int, n_trials: int, seed: int) -> CellImages:
    """Draw a cell's images by the protocol of the module docstring."""
    sources = trial_indices(len(test_set), n_images, n_trials, seed)
    targets = target_indices(test_set, sources, seed)
    labels = None if test_set.labels is None else test_set.labels[sources.reshape(-1)]
    return CellImages(test_set.batch(sources.reshape(-1)), test_set.batch(targets.reshape(-1)), labels, n_trials,
                      n_images)


def attack_generator(seed: int, attack: str, optimizer: str, budget: float) -> torch.Generator:
    """The CPU generator of one attack run's random starts (the same wherever the run happens)."""
    return torch.Generator(device="cpu").manual_seed(derive_seed("attack", seed, attack, optimizer, budget))
