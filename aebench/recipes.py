"""Training recipes: one YAML file per model in ``baselines/``, with per-dataset overrides.

A recipe gives the constructor arguments and training settings of a model, each number with its
source in a comment. Suites and ``aebench train`` refer to recipes by model name; ``--recipe PATH``
loads any file. Search order for a name: ``$AEBENCH_RECIPES``, ``./baselines``, and the
``baselines/`` folder of the aebench source tree.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_TOP_KEYS = {"model", "summary", "model_args", "training", "datasets"}
_DATASET_KEYS = {"model_args", "training"}


class RecipeError(ValueError):
    """A recipe file is missing or malformed."""


@dataclass(frozen=True)
class TrainingSettings:
    """Optimisation settings of one training run (Adam, as in the authors' code)."""

    epochs: int = 100
    batch_size: int = 100
    lr: float = 2e-4
    lr_step_epochs: int | None = None  # multiply lr by lr_gamma every this many epochs (G's exp_lr)
    lr_gamma: float = 0.1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RecipeError(f"training.{name} must be a positive integer, got {value!r}.")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise RecipeError(f"training.lr must be a positive number, got {self.lr!r}.")
        if self.lr_step_epochs is not None and (not isinstance(self.lr_step_epochs, int) or self.lr_step_epochs < 1):
            raise RecipeError(f"training.lr_step_epochs must be a positive integer or null, got {self.lr_step_epochs!r}.")

    def replace(self, **changes: Any) -> TrainingSettings:
        """A copy with the non-None ``changes`` applied."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Recipe:
    """A model's recipe resolved for one dataset."""

    model: str
    dataset: str
    model_args: dict[str, Any] = field(default_factory=dict)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    source: str = "<defaults>"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in checkpoints."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "model_args": self.model_args,
            "training": dataclasses.asdict(self.training),
            "source": self.source,
        }


def recipe_search_paths() -> list[Path]:
    """Folders searched for ``<model>.yaml``, in order."""
    paths = []
    if os.environ.get("AEBENCH_RECIPES"):
        paths.append(Path(os.environ["AEBENCH_RECIPES"]))
    paths += [Path.cwd() / "baselines", Path(__file__).resolve().parent.parent / "baselines"]
    return list(dict.fromkeys(paths))


def find_recipe(model: str) -> Path | None:
    """The recipe file for ``model``, or None if no search path has one."""
    for folder in recipe_search_paths():
        candidate = folder / f"{model}.yaml"
        if candidate.is_file():
            return candidate
    return None


def resolve_recipe(model: str, recipe: str | None = None) -> Path | None:
    """A suite's ``recipe`` entry (a YAML path or a recipe name), else the model's own recipe if it has one.

    Raises:
        RecipeError: If a named recipe or file does not exist.
    """
    if recipe is None:
        return find_recipe(model)
    path = Path(recipe) if recipe.endswith((".yaml", ".yml")) else find_recipe(recipe)
    if path is None or not path.is_file():
        raise RecipeError(f"Recipe {recipe!r} of model {model!r} not found (searched {[str(p) for p in recipe_search_paths()]}).")
    return path


def _training_settings(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: 'training' must be a mapping, got {type(raw).__name__}.")
    known = {f.name for f in dataclasses.fields(TrainingSettings)}
    unknown = set(raw) - known
    if unknown:
        raise RecipeError(f"{where}: unknown training keys {sorted(unknown)}; allowed: {sorted(known)}.")
    return dict(raw)


def load_recipe(model: str, dataset: str, path: str | Path | None = None) -> Recipe:
    """Resolve the recipe of ``model`` for ``dataset``: file defaults, then the dataset's overrides.

    Without a recipe file the model's constructor defaults and :class:`TrainingSettings` apply.

    Raises:
        RecipeError: If ``path`` does not exist or the file is malformed (unknown keys, wrong model).
    """
    file = Path(path) if path is not None else find_recipe(model)
    if file is None:
        return Recipe(model=model, dataset=dataset)
    if not file.is_file():
        raise RecipeError(f"Recipe file {file} does not exist.")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"{file}: not valid YAML ({err}).") from err
    if not isinstance(raw, dict):
        raise RecipeError(f"{file}: a recipe must be a mapping with keys {sorted(_TOP_KEYS)}.")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise RecipeError(f"{file}: unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}.")
    if raw.get("model", model) != model:
        raise RecipeError(f"{file} is the recipe of {raw['model']!r}, not of {model!r}.")
    model_args = copy.deepcopy(raw.get("model_args") or {})
    training = _training_settings(raw.get("training"), str(file))
    per_dataset = (raw.get("datasets") or {}).get(dataset) or {}
    unknown = set(per_dataset) - _DATASET_KEYS
    if unknown:
        raise RecipeError(f"{file}: datasets.{dataset} has unknown keys {sorted(unknown)}; allowed: {sorted(_DATASET_KEYS)}.")
    model_args.update(per_dataset.get("model_args") or {})
    training.update(_training_settings(per_dataset.get("training"), f"{file} (datasets.{dataset})"))
    return Recipe(model=model, dataset=dataset, model_args=model_args, training=TrainingSettings(**training),
                  source=str(file))
