"""The validated form of a suite: frozen dataclasses whose field defaults are the suite defaults (written once).

A suite names datasets, models (trained from a recipe or loaded from a checkpoint), attacks with their optimizer
and budgets, the sampling protocol (N images × T trials, seeds), and the extra measurements (fidelity, downstream).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from aebench.attacks import DEFAULT_BUDGETS

TABLES = ("table1", "table2", "table3", "audit")


class SuiteError(ValueError):
    """One or more problems in a suite file; the message lists each with its key and a fix."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a suite: a registry name with its recipe and constructor overrides, or a checkpoint to load.

    Attributes:
        name: Registered model name (for a checkpoint: the model the checkpoint holds).
        label: What rows and tables call it (default: ``name``).
        recipe: A recipe name or YAML path (default: the model's own).
        overrides: Constructor arguments that replace the recipe's (trained models only).
        checkpoint: A checkpoint path, a foreign checkpoint ``{format: authors|pythae|state_dict, path: ...,
            options}``, or ``{dataset: either of those}``; the model is loaded instead of trained.
        datasets: Only these of the suite's datasets (e.g. a model that exists for some image shapes only).
        instance: A model object handed over in Python (``aebench.benchmark``), never from a file.
    """

    name: str
    label: str
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | dict[str, Any] | None = None
    datasets: tuple[str, ...] | None = None
    instance: Any = field(default=None, compare=False, repr=False)

    def checkpoint_for(self, dataset: str) -> str | dict[str, Any] | None:
        """The checkpoint for ``dataset``: a path, a foreign checkpoint ``{format, path, ...}``, or None."""
        if isinstance(self.checkpoint, dict) and "format" not in self.checkpoint:
            return self.checkpoint.get(dataset)
        return self.checkpoint


@dataclass(frozen=True)
class AttackSpec:
    """One attack (objective) with its optimizer, budgets λ and optimizer options.

    The validator fills in :data:`aebench.attacks.DEFAULT_OPTIMIZER` when a suite names no optimizer.
    """

    name: str
    optimizer: str
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FidelitySpec:
    """Generation fidelity per model: ``fd_classifier`` for labelled datasets, Inception FID when weights are given.

    Attributes:
        n_samples: Decoded prior samples compared with the test split.
        inception_weights: Inception weights file for ``fid_inception`` (optional).
        classifier_epochs: Epochs the feature classifier trains before its accuracy gate is checked (None: the
            dataset's default, see :mod:`aebench.fidelity.feature_classifier`).
        min_accuracy: The gate: the classifier's test accuracy needed before its features are used (None: the
            dataset's default).
    """

    n_samples: int = 10000
    inception_weights: str | None = None
    classifier_epochs: int | None = None
    min_accuracy: float | None = None


@dataclass(frozen=True)
class DownstreamSpec:
    """Table 3: an MLP on frozen latents, clean and under the latent attack at ``budget``, trained ``epochs``."""

    budget: float = 1.0
    epochs: int = 20


@dataclass(frozen=True)
class Suite:
    """A validated suite. Field defaults are the defaults of the suite file's keys."""

    name: str
    version: str
    path: str
    datasets: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    attacks: tuple[AttackSpec, ...]
    output: str  # default: results/<suite file name without .yaml>
    training: dict[str, Any] = field(default_factory=dict)  # only the keys the suite gives
    metrics: tuple[str, ...] | None = None  # None: every metric that applies to an attack
    noise_baseline: bool = True
    n_images: int = 100
    n_trials: int = 10
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    cache_dir: str = "runs/cache"
    data_root: str | None = None
    attack_batch_size: int = 1000
    examples: int = 6
    description: str = ""
    paper_results: str | None = None
    tables: tuple[str, ...] = ("table1",)
    fidelity: FidelitySpec | None = None
    downstream: DownstreamSpec | None = None
    given: tuple[str, ...] = ()  # the top-level keys the file gives (the others are defaults), for --explain

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored beside the results); a model object handed over in Python is left out."""
        import json

        plain = dataclasses.replace(self, models=tuple(dataclasses.replace(m, instance=None) for m in self.models))
        return json.loads(json.dumps(dataclasses.asdict(plain), default=list))


def field_default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (so a validator never writes a default a second time)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default.")


def field_names(cls: type) -> set[str]:
    """Names of a dataclass's fields."""
    return {f.name for f in dataclasses.fields(cls)}
