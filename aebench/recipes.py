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
        problems = training_problems(dataclasses.asdict(self))
        if problems:
            key, message = problems[0]
            raise RecipeError(f"training.{key} {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def training_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, message)`` for every training setting in ``values`` that is unknown or out of range.

    The one check of training settings, shared by recipes, suites and the command line.
    """
    known = [f.name for f in dataclasses.fields(TrainingSettings)]
    problems = []
    for key, value in values.items():
        if key not in known:
            problems.append((key, f"is not a training setting; known: {', '.join(known)}."))
        elif key in ("epochs", "batch_size") and not (_is_int(value) and value >= 1):
            problems.append((key, f"must be a positive integer, got {value!r}."))
        elif key in ("lr", "lr_gamma") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                            or not 0 < value < float("inf")):
            problems.append((key, f"must be a positive number, got {value!r}."))
        elif key == "lr_step_epochs" and value is not None and not (_is_int(value) and value >= 1):
            problems.append((key, f"must be a positive integer or null (no step schedule), got {value!r}."))
    return problems


@dataclass(frozen=True)
class Recipe:
    """A model's recipe file read for one dataset, its layers kept apart so each value can say where it came from.

    Attributes:
        model: The registered model the recipe is for.
        dataset: The dataset whose ``datasets.<name>`` block was read.
        model_args: Constructor arguments at the top of the file.
        training: Training settings at the top of the file (only the keys it gives).
        dataset_model_args: ``datasets.<dataset>.model_args``.
        dataset_training: ``datasets.<dataset>.training``.
        source: The file, or ``"<defaults>"`` when the model has none.
    """

    model: str
    dataset: str
    model_args: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    dataset_model_args: dict[str, Any] = field(default_factory=dict)
    dataset_training: dict[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"


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
        searched = [str(p) for p in recipe_search_paths()]
        raise RecipeError(f"Recipe {recipe!r} of model {model!r} not found (searched {searched}).")
    return path


def _training_settings(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: 'training' must be a mapping, got {type(raw).__name__}.")
    problems = training_problems(raw)
    if problems:
        raise RecipeError(f"{where}: " + "; ".join(f"training.{key} {message}" for key, message in problems))
    return dict(raw)


def load_recipe(model: str, dataset: str, path: str | Path | None = None) -> Recipe:
    """Read the recipe of ``model`` with its ``datasets.<dataset>`` block (merging is :mod:`aebench.config`'s job).

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
    if not isinstance(model_args, dict):
        raise RecipeError(f"{file}: 'model_args' must be a mapping of constructor arguments.")
    training = _training_settings(raw.get("training"), str(file))
    blocks = raw.get("datasets") or {}
    if not isinstance(blocks, dict):
        raise RecipeError(f"{file}: 'datasets' must map dataset names to blocks with model_args/training.")
    per_dataset = blocks.get(dataset) or {}
    unknown = set(per_dataset) - _DATASET_KEYS
    if unknown:
        raise RecipeError(f"{file}: datasets.{dataset} has unknown keys {sorted(unknown)}; "
                          f"allowed: {sorted(_DATASET_KEYS)}.")
    dataset_args = copy.deepcopy(per_dataset.get("model_args") or {})
    if not isinstance(dataset_args, dict):
        raise RecipeError(f"{file}: datasets.{dataset}.model_args must be a mapping of constructor arguments.")
    return Recipe(model=model, dataset=dataset, model_args=model_args, training=training,
                  dataset_model_args=dataset_args,
                  dataset_training=_training_settings(per_dataset.get("training"), f"{file} (datasets.{dataset})"),
                  source=str(file))
