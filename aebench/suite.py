"""Suites: YAML files that say what to train, attack and measure, validated before any compute.

``load_suite(path)`` reads the YAML with ``yaml.safe_load`` (no code execution), turns it into frozen
dataclasses and checks every name against the registries, every number against its range, and every
data or checkpoint file for existence. All problems are collected and raised together as one
:class:`SuiteError` naming the file, the key and the value, so a suite never fails an hour in.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aebench.recipes import RecipeError, resolve_recipe

DEFAULT_BUDGETS = (1.0, 3.0, 5.0)
_SUITE_KEYS = {"name", "version", "description", "datasets", "models", "training", "attacks", "metrics",
               "noise_baseline", "n_images", "n_trials", "seeds", "device", "output", "cache_dir", "data_root",
               "attack_batch_size", "examples", "paper_results", "tables", "downstream", "fidelity"}
_TABLES = ("table1", "table2", "table3")
_MODEL_KEYS = {"name", "label", "recipe", "overrides", "checkpoint", "datasets"}
_ATTACK_KEYS = {"name", "optimizer", "budgets", "options"}
_TRAINING_KEYS = {"epochs", "batch_size", "lr", "lr_step_epochs", "lr_gamma"}
_FIDELITY_KEYS = {"n_samples", "inception_weights"}
_DOWNSTREAM_KEYS = {"budget", "epochs"}


class SuiteError(ValueError):
    """One or more problems in a suite file; the message lists each with its key and a fix."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a suite: a registry name, its recipe, constructor overrides, or a checkpoint to load."""

    name: str
    label: str
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | dict[str, str] | None = None
    datasets: tuple[str, ...] | None = None  # only these datasets (e.g. a model that exists for 1x32x32 only)

    def checkpoint_for(self, dataset: str) -> str | None:
        """The checkpoint to load for ``dataset`` (a single path or a per-dataset mapping)."""
        if isinstance(self.checkpoint, dict):
            return self.checkpoint.get(dataset)
        return self.checkpoint


@dataclass(frozen=True)
class AttackSpec:
    """One attack (objective) with its optimizer, budgets λ and optimizer options."""

    name: str
    optimizer: str
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FidelitySpec:
    """Generation fidelity per model: ``fd_classifier`` always, Inception FID when weights are given."""

    n_samples: int = 10000
    inception_weights: str | None = None


@dataclass(frozen=True)
class DownstreamSpec:
    """Table 3: an MLP on frozen latents, clean and under the latent attack at ``budget``."""

    budget: float = 1.0
    epochs: int = 20


@dataclass(frozen=True)
class Suite:
    """A validated suite."""

    name: str
    version: str
    path: str
    datasets: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    attacks: tuple[AttackSpec, ...]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    noise_baseline: bool = True
    n_images: int = 100
    n_trials: int = 10
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    output: str = "results/suite"
    cache_dir: str = "runs/cache"
    data_root: str | None = None
    attack_batch_size: int = 1000
    examples: int = 6
    description: str = ""
    paper_results: str | None = None
    tables: tuple[str, ...] = ("table1",)
    fidelity: FidelitySpec | None = None
    downstream: DownstreamSpec | None = None

    def cells(self) -> list[Cell]:
        """Every (dataset, model, seed) combination, in a stable order."""
        return [Cell(self, d, m, s) for d in self.datasets for m in self.models for s in self.seeds
                if m.datasets is None or d in m.datasets]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (used for hashing and provenance)."""
        return json.loads(json.dumps(asdict(self), default=list))


@dataclass(frozen=True)
class Cell:
    """One independent unit of work: a model on a dataset with a seed, attacked with every attack."""

    suite: Suite
    dataset: str
    model: ModelSpec
    seed: int

    @property
    def cell_id(self) -> str:
        """File-name-safe identifier, unique within the suite."""
        return f"{self.dataset}__{self.model.label}__s{self.seed}"

    def config_hash(self) -> str:
        """Hash of everything that decides this cell's numbers (a changed suite, recipe or checkpoint re-runs it)."""
        from aebench.recipes import resolve_recipe

        suite = self.suite.as_dict()
        relevant = {k: suite[k] for k in ("training", "attacks", "metrics", "noise_baseline", "n_images", "n_trials",
                                           "examples", "fidelity", "downstream", "attack_batch_size")}
        checkpoint = self.model.checkpoint_for(self.dataset)
        recipe = None if checkpoint else resolve_recipe(self.model.name, self.model.recipe)
        payload = {"dataset": self.dataset, "model": asdict(self.model), "seed": self.seed, **relevant,
                   "recipe_sha": _file_sha(recipe), "checkpoint_sha": _file_sha(checkpoint)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:16]


def _file_sha(path: str | Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Problems:
    """Collects validation problems so the user sees all of them at once."""

    def __init__(self, path: str) -> None:
        self.path, self.items = path, []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"  - {key}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise SuiteError(f"{self.path}: {len(self.items)} problem(s):\n" + "\n".join(self.items))


def _did_you_mean(value: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Known: {', '.join(sorted(choices))}."


def _check_keys(raw: dict, allowed: set[str], where: str, problems: _Problems) -> None:
    for key in raw:
        if key not in allowed:
            problems.add(f"{where}{key}", f"unknown key.{_did_you_mean(key, sorted(allowed))}")


def _positive_int(raw: dict, key: str, default: int, problems: _Problems) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        problems.add(key, f"must be a positive integer, got {value!r}.")
        return default
    return value


def _boolean(raw: dict, key: str, default: bool, problems: _Problems) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.add(key, f"must be true or false, got {value!r}.")
        return default
    return value


def _count(raw: dict, key: str, default: int, problems: _Problems) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        problems.add(key, f"must be a non-negative integer, got {value!r}.")
        return default
    return value


def _nonempty_list(raw: dict, key: str, problems: _Problems, default: list | None = None) -> list:
    value = raw.get(key, default)
    if value is None:
        problems.add(key, "is required and must be a non-empty list.")
        return []
    if not isinstance(value, list) or not value:
        problems.add(key, f"must be a non-empty list, got {value!r}.")
        return []
    return value


def _named_entries(raw: dict, key: str, allowed: set[str], problems: _Problems) -> list[tuple[str, dict]]:
    """The entries of a list of names or ``{name: ..., ...}`` mappings, as (location, mapping) pairs."""
    entries = []
    for i, entry in enumerate(_nonempty_list(raw, key, problems)):
        where = f"{key}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            problems.add(where, f"must be a {key[:-1]} name or a mapping with 'name', got {entry!r}.")
            continue
        _check_keys(entry, allowed, f"{where}.", problems)
        entries.append((where, entry))
    return entries


def _parse_models(raw: dict, problems: _Problems, model_names: list[str]) -> list[ModelSpec]:
    specs, labels = [], set()
    for where, entry in _named_entries(raw, "models", _MODEL_KEYS, problems):
        name = entry["name"]
        if name not in model_names:
            problems.add(f"{where}.name", f"unknown model {name!r}.{_did_you_mean(name, model_names)}")
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            problems.add(f"{where}.overrides", f"must be a mapping of constructor arguments, got {overrides!r}.")
            overrides = {}
        elif name in model_names:
            accepted = _constructor_args(name)
            for key in overrides if accepted is not None else []:
                if key not in accepted:
                    problems.add(f"{where}.overrides.{key}", f"not an argument of {name!r}.{_did_you_mean(key, accepted)}")
        if entry.get("recipe") is not None:
            try:
                resolve_recipe(name, str(entry["recipe"]))
            except RecipeError as err:
                problems.add(f"{where}.recipe", str(err))
        label = str(entry.get("label", name))
        if label in labels:
            problems.add(f"{where}.label", f"{label!r} is used twice; give each entry of a model a distinct 'label'.")
        labels.add(label)
        checkpoint = entry.get("checkpoint")
        _check_checkpoints(checkpoint, entry.get("datasets") or raw.get("datasets") or [], where, problems)
        only = entry.get("datasets")
        if only is not None and (not isinstance(only, list) or not only):
            problems.add(f"{where}.datasets", f"must be a non-empty list of the suite's datasets, got {only!r}.")
            only = None
        elif only is not None and set(only) - set(raw.get("datasets") or []):
            problems.add(f"{where}.datasets", f"{sorted(set(only) - set(raw.get('datasets') or []))} are not in the "
                         "suite's datasets list.")
        specs.append(ModelSpec(name=name, label=label, recipe=entry.get("recipe"), overrides=overrides,
                               checkpoint=checkpoint, datasets=tuple(only) if only else None))
    return specs


def _constructor_args(model: str) -> list[str] | None:
    """Names a registered model's constructor accepts (None if it takes arbitrary keywords)."""
    import inspect

    from aebench.model import MODELS

    params = inspect.signature(MODELS[model]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return sorted(params)


def _check_checkpoints(checkpoint: Any, datasets: list, where: str, problems: _Problems) -> None:
    """Every dataset the model runs on needs a checkpoint trained on that dataset."""
    from aebench.checkpoint import CheckpointError, read_metadata

    if not checkpoint:
        return
    mapping = checkpoint if isinstance(checkpoint, dict) else {d: checkpoint for d in datasets}
    for dataset in datasets:
        if dataset not in mapping:
            problems.add(f"{where}.checkpoint", f"no checkpoint for dataset {dataset!r}; add it to the mapping or "
                         "restrict the model with 'datasets'.")
    for dataset, path in mapping.items():
        if not Path(path).is_file():
            problems.add(f"{where}.checkpoint", f"file {path!r} does not exist; train it or fix the path.")
            continue
        try:
            trained_on = read_metadata(path).get("dataset")
        except CheckpointError as err:
            problems.add(f"{where}.checkpoint", str(err))
            continue
        if trained_on not in (None, dataset):
            problems.add(f"{where}.checkpoint", f"{path} was trained on {trained_on!r} but would be evaluated on "
                         f"{dataset!r}; give a per-dataset mapping.")


def _parse_budgets(value: Any, where: str, problems: _Problems) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        problems.add(where, f"must be a non-empty list of numbers, got {value!r}.")
        return DEFAULT_BUDGETS
    budgets = []
    for b in value:
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            problems.add(where, f"budget {b!r} is not a number; write L2 budgets like [1, 3, 5].")
        elif not math.isfinite(b) or b < 0:
            problems.add(where, f"budget {b!r} must be a finite number ≥ 0 (an L2 norm in [0, 1] pixel units).")
        else:
            budgets.append(float(b))
    return tuple(budgets)


def _parse_attacks(raw: dict, problems: _Problems) -> list[AttackSpec]:
    from aebench.attacks import ATTACKS, DEFAULT_OPTIMIZER, OPTIMIZERS, optimizer_options

    specs, seen = [], set()
    for where, entry in _named_entries(raw, "attacks", _ATTACK_KEYS, problems):
        if entry["name"] not in ATTACKS:
            problems.add(f"{where}.name", f"unknown attack {entry['name']!r}.{_did_you_mean(entry['name'], list(ATTACKS))}")
        optimizer = entry.get("optimizer", DEFAULT_OPTIMIZER)
        if optimizer not in OPTIMIZERS:
            problems.add(f"{where}.optimizer", f"unknown optimizer {optimizer!r}.{_did_you_mean(optimizer, list(OPTIMIZERS))}")
        budgets = _parse_budgets(entry.get("budgets", list(DEFAULT_BUDGETS)), f"{where}.budgets", problems)
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            problems.add(f"{where}.options", f"must be a mapping of optimizer options, got {options!r}.")
            options = {}
        elif optimizer in OPTIMIZERS:
            accepted = list(optimizer_options(optimizer))
            for key in options:
                if key not in accepted:
                    problems.add(f"{where}.options.{key}", f"not an option of {optimizer!r}.{_did_you_mean(key, accepted)}")
        if (entry["name"], optimizer) in seen:
            problems.add(where, f"a second {entry['name']!r} attack with optimizer {optimizer!r}: rows could not tell "
                         "them apart; merge their budgets into one entry.")
        seen.add((entry["name"], optimizer))
        specs.append(AttackSpec(name=entry["name"], optimizer=optimizer, budgets=budgets, options=options))
    return specs


def _parse_metrics(raw: dict, problems: _Problems) -> tuple[str, ...] | None:
    from aebench.metrics import METRICS

    if raw.get("metrics") is None:
        return None
    names = _nonempty_list(raw, "metrics", problems)
    for name in names:
        if name not in METRICS:
            problems.add("metrics", f"unknown metric {name!r}.{_did_you_mean(name, list(METRICS))}")
    return tuple(names)


def _parse_training(raw: dict, problems: _Problems) -> dict[str, Any]:
    training = raw.get("training") or {}
    if not isinstance(training, dict):
        problems.add("training", f"must be a mapping, got {training!r}.")
        return {}
    _check_keys(training, _TRAINING_KEYS, "training.", problems)
    for key in ("epochs", "batch_size"):
        if key in training and (not isinstance(training[key], int) or isinstance(training[key], bool) or training[key] < 1):
            problems.add(f"training.{key}", f"must be a positive integer, got {training[key]!r}.")
    for key in ("lr", "lr_gamma"):
        if key in training and (isinstance(training[key], bool) or not isinstance(training[key], (int, float))
                                or not training[key] > 0):
            problems.add(f"training.{key}", f"must be a positive number, got {training[key]!r}.")
    step = training.get("lr_step_epochs")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
        problems.add("training.lr_step_epochs", f"must be a positive integer or null, got {step!r}.")
    return training


def _parse_datasets(raw: dict, problems: _Problems, data_root: str | None) -> list[str]:
    from aebench.data import DATASETS, missing_files_message

    names = _nonempty_list(raw, "datasets", problems)
    for name in names:
        if name not in DATASETS:
            problems.add("datasets", f"unknown dataset {name!r}.{_did_you_mean(name, list(DATASETS))}")
            continue
        missing = missing_files_message(name, data_root)
        if missing:
            problems.add("datasets", missing)
    return [str(n) for n in names]


def _parse_section(raw: dict, key: str, allowed: set[str], problems: _Problems) -> dict | None:
    value = raw.get(key)
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"must be a mapping (keys {sorted(allowed)}), true, or null; got {value!r}.")
        return None
    _check_keys(value, allowed, f"{key}.", problems)
    return value


def _parse_fidelity(raw: dict, problems: _Problems) -> FidelitySpec | None:
    section = _parse_section(raw, "fidelity", _FIDELITY_KEYS, problems)
    if section is None:
        return None
    n = _positive_int(section, "n_samples", 10000, problems)
    weights = section.get("inception_weights")
    if weights is not None and not Path(weights).is_file():
        problems.add("fidelity.inception_weights", f"file {weights!r} does not exist; see `aebench.fidelity.inception`.")
    return FidelitySpec(n_samples=n, inception_weights=weights)


def _parse_downstream(raw: dict, problems: _Problems) -> DownstreamSpec | None:
    section = _parse_section(raw, "downstream", _DOWNSTREAM_KEYS, problems)
    if section is None:
        return None
    budget = _parse_budgets([section.get("budget", 1.0)], "downstream.budget", problems)
    return DownstreamSpec(budget=budget[0] if budget else 1.0,
                          epochs=_positive_int(section, "epochs", 20, problems))


def _parse_tables(raw: dict, problems: _Problems) -> tuple[str, ...]:
    tables = _nonempty_list(raw, "tables", problems, default=["table1"])
    for name in tables:
        if name not in _TABLES:
            problems.add("tables", f"unknown table {name!r}.{_did_you_mean(name, list(_TABLES))}")
    return tuple(str(t) for t in tables)


def load_suite(path: str | Path, check_data: bool = True) -> Suite:
    """Read and validate a suite file.

    Args:
        path: The YAML file.
        check_data: Also check that every dataset's files are present.

    Raises:
        SuiteError: Listing every problem found, each with its key, value and a fix.
    """
    from aebench.models import list_models

    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"Suite file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite must be a YAML mapping with keys such as name, datasets, models, attacks.")
    problems = _Problems(str(path))
    _check_keys(raw, _SUITE_KEYS, "", problems)
    for key in ("name", "version"):
        if key not in raw:
            problems.add(key, "is required.")
    data_root = raw.get("data_root")
    datasets = _parse_datasets(raw, problems, data_root) if check_data else [str(d) for d in raw.get("datasets") or []]
    if not check_data and not datasets:
        problems.add("datasets", "is required and must be a non-empty list.")
    models = _parse_models(raw, problems, list_models())
    attacks = _parse_attacks(raw, problems)
    seeds = _nonempty_list(raw, "seeds", problems, default=[0])
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        problems.add("seeds", f"must be non-negative integers, got {seeds!r}.")
    suite_kwargs = dict(
        name=str(raw.get("name", path.stem)), version=str(raw.get("version", "0")), path=str(path),
        datasets=tuple(datasets), models=tuple(models), attacks=tuple(attacks),
        training=_parse_training(raw, problems), metrics=_parse_metrics(raw, problems),
        noise_baseline=_boolean(raw, "noise_baseline", True, problems),
        n_images=_positive_int(raw, "n_images", 100, problems), n_trials=_positive_int(raw, "n_trials", 10, problems),
        seeds=tuple(seeds), device=str(raw.get("device", "auto")),
        output=str(raw.get("output", Path("results") / path.stem)), cache_dir=str(raw.get("cache_dir", "runs/cache")),
        data_root=data_root, attack_batch_size=_positive_int(raw, "attack_batch_size", 1000, problems),
        examples=_count(raw, "examples", 6, problems), description=str(raw.get("description", "")),
        paper_results=raw.get("paper_results"), tables=_parse_tables(raw, problems),
        fidelity=_parse_fidelity(raw, problems), downstream=_parse_downstream(raw, problems),
    )
    downstream = suite_kwargs["downstream"]
    if downstream is not None and not any(a.name == "latent" and downstream.budget in a.budgets for a in attacks):
        problems.add("downstream.budget", f"the downstream accuracy reuses the latent attack at λ={downstream.budget:g}; "
                     "add that budget to a latent attack in 'attacks'.")
    problems.raise_if_any()
    return Suite(**suite_kwargs)
