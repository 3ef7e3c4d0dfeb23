"""The plan of a suite run: cells, where each cell's model comes from, and its measurements with their keys.

Everything here is decided before any compute: expanding a suite into (dataset × model × seed) cells, resolving each
trained model's :class:`~aebench.config.TrainingConfig`, and listing each cell's measurements (reconstruction,
fidelity, every (attack, optimizer, budget), downstream) with the settings that decide their numbers. The same plan
drives the run, the progress count, ``aebench validate --explain`` and the report's "failed"/"missing" cells.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.attacks import ATTACKS
from aebench.checkpoint import read_metadata
from aebench.config import TrainingConfig, resolve_training
from aebench.data import data_fingerprint, dataset_info
from aebench.fingerprint import measurement_fingerprint
from aebench.metrics import metrics_for
from aebench.suite import AttackSpec, ModelSpec, Suite
from aebench.utils import file_sha256, stable_hash

NOISE_OPTIMIZER = "noise"


@dataclass(frozen=True)
class ModelSource:
    """Where a cell's model comes from: trained from ``training``, or loaded from ``checkpoint``.

    Attributes:
        name: The registered model.
        training: The resolved training configuration (trained models).
        checkpoint: The checkpoint file (loaded models).
        checkpoint_sha256: Its SHA-256, which identifies the weights.
    """

    name: str
    training: TrainingConfig | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    source: dict[str, Any] | None = None
    instance: Any = field(default=None, compare=False)

    def key(self) -> str:
        """Identifies the model: the training key (settings and code) or the checkpoint's SHA-256."""
        return self.training.key() if self.training is not None else str(self.checkpoint_sha256)

    def settings_key(self) -> str:
        """As :meth:`key`, without the training code (equal for stale and fresh training of the same settings)."""
        return self.training.settings_key() if self.training is not None else str(self.checkpoint_sha256)

    def row_settings(self) -> dict[str, Any]:
        """What every row records about its model (for an imported one, where it came from)."""
        if self.training is None:
            found = {"model": self.name, "checkpoint": {"path": self.checkpoint, "sha256": self.checkpoint_sha256}}
            return {**found, "source": self.source} if self.source else found
        return {"model": self.name, "training": dataclasses.asdict(self.training.training),
                "model_args": self.training.model_args, "training_key": self.training.key(),
                "training_code": self.training.code}


@dataclass(frozen=True)
class Measurement:
    """One unit of work and of resume: computed, written and skipped as a whole.

    Attributes:
        kind: ``reconstruction``, ``fidelity``, ``attack`` or ``downstream`` (see
            :data:`aebench.fingerprint.MEASUREMENT_CODE`).
        name: File-name-safe identifier within the cell, e.g. ``attack-latent-lbfgs-3``.
        settings: Everything besides the model that decides its numbers.
        code: Fingerprint of the code that computes it.
    """

    kind: str
    name: str
    settings: dict[str, Any]
    code: str

    def key(self, model_key: str) -> str:
        """The measurement key for a model: hash of the model's key, the settings and the code."""
        return stable_hash({"model": model_key, "settings": self.settings, "code": self.code})

    def settings_key(self, model_settings_key: str) -> str:
        """As :meth:`key` without any code fingerprint, to recognise stale work."""
        return stable_hash({"model": model_settings_key, "settings": self.settings})


@dataclass(frozen=True)
class CellPlan:
    """One independent unit of a suite: a model on a dataset with a seed, and its measurements."""

    dataset: str
    label: str
    seed: int
    spec: ModelSpec
    source: ModelSource
    measurements: tuple[Measurement, ...]

    @property
    def cell_id(self) -> str:
        """File-name-safe identifier, unique within the suite."""
        return f"{self.dataset}__{self.label}__s{self.seed}"


def attack_name(attack: str, optimizer: str, budget: float) -> str:
    """The measurement name of one (attack, optimizer, budget)."""
    return f"attack-{attack}-{optimizer}-{budget:g}"


def attack_runs(suite: Suite) -> list[tuple[AttackSpec, str, float]]:
    """Every (attack, optimizer, budget) a cell runs: the suite's attacks, plus the noise baseline once per objective.

    The one place that decides the noise baseline, shared by the run and the progress count.
    """
    runs, noise_done = [], set()
    for spec in suite.attacks:
        optimizers = [spec.optimizer]
        if suite.noise_baseline and spec.optimizer != NOISE_OPTIMIZER and spec.name not in noise_done:
            optimizers.append(NOISE_OPTIMIZER)
            noise_done.add(spec.name)
        runs += [(spec, optimizer, budget) for optimizer in optimizers for budget in spec.budgets]
    return runs


def downstream_attack(suite: Suite) -> AttackSpec | None:
    """The latent attack whose images the downstream accuracy is scored on (the first real one at its budget)."""
    if suite.downstream is None:
        return None
    for spec in suite.attacks:
        if spec.name == "latent" and spec.optimizer != NOISE_OPTIMIZER and suite.downstream.budget in spec.budgets:
            return spec
    return None


def _measurements(suite: Suite, dataset: str, seed: int) -> list[Measurement]:
    data = data_fingerprint(dataset, suite.data_root)
    protocol = {"data": data, "seed": seed}
    sampled = {**protocol, "n_images": suite.n_images, "n_trials": suite.n_trials, "batch": suite.attack_batch_size}
    found = [Measurement("reconstruction", "reconstruction", {**protocol, "split": "test"},
                         measurement_fingerprint("reconstruction"))]
    fidelity = suite.fidelity
    if fidelity is not None:
        code = measurement_fingerprint("fidelity")
        if dataset_info(dataset).num_classes is not None:  # the feature classifier needs labels
            found.append(Measurement("fidelity", "fidelity-fd_classifier", {
                **protocol, "metric": "fd_classifier", "n_samples": fidelity.n_samples,
                "classifier_epochs": fidelity.classifier_epochs, "min_accuracy": fidelity.min_accuracy}, code))
        if fidelity.inception_weights:
            found.append(Measurement("fidelity", "fidelity-fid_inception", {
                **protocol, "metric": "fid_inception", "n_samples": fidelity.n_samples,
                "weights": fidelity.inception_weights, "weights_sha256": file_sha256(fidelity.inception_weights)},
                code))
    code = measurement_fingerprint("attack")
    for spec, optimizer, budget in attack_runs(suite):
        options = spec.options if optimizer == spec.optimizer else {}
        metrics = [m.name for m in metrics_for(ATTACKS[spec.name].kind, suite.metrics)]
        found.append(Measurement("attack", attack_name(spec.name, optimizer, budget), {
            **sampled, "attack": spec.name, "optimizer": optimizer, "budget": budget, "options": options,
            "metrics": metrics, "examples": suite.examples}, code))
    source_attack = downstream_attack(suite)
    if source_attack is not None and suite.downstream is not None and dataset_info(dataset).num_classes is not None:
        found.append(Measurement("downstream", "downstream", {
            **sampled, "budget": suite.downstream.budget, "epochs": suite.downstream.epochs,
            "attack": {"name": "latent", "optimizer": source_attack.optimizer, "options": source_attack.options}},
            measurement_fingerprint("downstream")))
    return found


def model_source(spec: ModelSpec, dataset: str, seed: int, suite: Suite,
                 command_line: Mapping[str, Any] | None = None) -> ModelSource:
    """Resolve where a cell's model comes from (its training configuration, or its checkpoint and SHA-256)."""
    if spec.instance is not None:  # a model object handed over in Python (aebench.benchmark)
        return ModelSource(name=spec.name, checkpoint_sha256=state_fingerprint(spec.instance), instance=spec.instance)
    checkpoint = spec.checkpoint_for(dataset)
    if isinstance(checkpoint, dict):
        return imported_source(spec, checkpoint, dataset, suite)
    if checkpoint:
        return ModelSource(name=read_metadata(checkpoint)["model"], checkpoint=checkpoint,
                           checkpoint_sha256=file_sha256(checkpoint))
    config = resolve_training(spec.name, dataset, seed=seed, recipe=spec.recipe, overrides=spec.overrides,
                              suite_training=suite.training, command_line=command_line, data_root=suite.data_root)
    return ModelSource(name=spec.name, training=config)


def state_fingerprint(model: Any) -> str:
    """SHA-256 of a model's tensors (names, shapes, dtypes, bytes): the identity of weights held in memory."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def imported_source(spec: ModelSpec, checkpoint: dict[str, Any], dataset: str, suite: Suite) -> ModelSource:
    """Convert a foreign checkpoint (``{format: ..., path: ..., options}``) once, cached as an aebench checkpoint.

    The model's identity is the SHA-256 of the converted weights, so a changed source file or adapter that
    changes the weights is a new model, and re-converting the same file is the same one.
    """
    from aebench.adapters import import_checkpoint, rebuildable, save_imported

    options = {k: v for k, v in checkpoint.items() if k not in ("format", "path")}
    imported = import_checkpoint(checkpoint["format"], checkpoint["path"], model=spec.name, dataset=dataset,
                                 data_root=suite.data_root, **options)
    weights = state_fingerprint(imported.model)
    if not rebuildable(imported.model):
        return ModelSource(name=type(imported.model).__name__, checkpoint_sha256=weights, source=imported.source,
                           instance=imported.model)
    path = Path(suite.cache_dir) / "imported" / f"{checkpoint['format']}-{dataset}-{weights[:16]}.safetensors"
    if not path.is_file():
        save_imported(imported, path, dataset)
    return ModelSource(name=imported.model.registry_name, checkpoint=str(path), checkpoint_sha256=weights,
                       source=imported.source)


def plan_suite(suite: Suite, command_line: Mapping[str, Any] | None = None) -> list[CellPlan]:
    """Every cell of ``suite`` in a stable order, with its model source and measurements.

    Args:
        suite: A validated suite.
        command_line: Training settings given on the command line (they replace the suite's for every model).

    Raises:
        RecipeError, ValueError: For a recipe or a model argument that does not resolve (before any compute).
    """
    cells = []
    for dataset in suite.datasets:
        measurements = {seed: tuple(_measurements(suite, dataset, seed)) for seed in suite.seeds}
        for spec in suite.models:
            if spec.datasets is not None and dataset not in spec.datasets:
                continue
            for seed in suite.seeds:
                source = model_source(spec, dataset, seed, suite, command_line)
                cells.append(CellPlan(dataset, spec.label, seed, spec, source, measurements[seed]))
    return cells


def explain_cell(cell: CellPlan, suite: Suite) -> list[tuple[str, Any, str]]:
    """``(setting, value, source)`` for every setting of a cell, for ``aebench validate --explain``."""
    given = set(suite.given)
    lines: list[tuple[str, Any, str]] = []
    if cell.source.training is not None:
        lines += cell.source.training.explain()
        lines.append(("recipe", cell.source.training.recipe, "suite" if cell.spec.recipe else "default"))
    else:
        lines += [("checkpoint", cell.source.checkpoint, "suite"), ("checkpoint.sha256", cell.source.checkpoint_sha256,
                                                                   "file")]
    for key in ("n_images", "n_trials", "attack_batch_size", "noise_baseline", "device", "examples", "metrics"):
        value = getattr(suite, key)
        if key == "metrics" and value is None:
            value = "all that apply"
        lines.append((key, value, "suite" if key in given else "default"))
    lines.append(("seed", cell.seed, "suite" if "seeds" in given else "default"))
    for m in cell.measurements:
        if m.kind == "attack":
            options = m.settings["options"] or "defaults"
            lines.append((m.name, f"options {options}", "suite"))
        elif m.kind in ("fidelity", "downstream"):
            # None means "the dataset's default" (feature-classifier epochs and accuracy gate).
            shown = {k: "dataset default" if v is None else v for k, v in m.settings.items()
                     if k not in ("data", "seed", "batch", "metric")}
            lines.append((m.name, shown, "suite"))
    return lines
