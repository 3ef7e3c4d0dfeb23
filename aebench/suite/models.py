"""Validation of a suite's models: registry names, labels, overrides against the constructors, checkpoints.

A checkpoint entry is what it says: a native checkpoint must hold the model its entry names (``label`` renames the
row) and be trained on the dataset it is used for; ``overrides`` and ``recipe`` do not apply to it; a foreign
checkpoint (``{format: ..., path: ...}``) must name a known format, an existing path and that format's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aebench.suite._checks import Problems, _named_entries, _string, did_you_mean
from aebench.suite.types import ModelSpec, field_names

_MODEL_KEYS = field_names(ModelSpec) - {"instance"}


def parse_models(raw: dict, datasets: list[str], problems: Problems,
                  instances: dict[str, Any] | None = None) -> list[ModelSpec]:
    """The ``models`` entries as :class:`ModelSpec`, every problem added to ``problems``."""
    from aebench.config import model_arg_problems
    from aebench.models import MODELS, list_models
    from aebench.recipes import RecipeError, resolve_recipe

    known = list_models()
    specs, labels = [], set()
    for where, entry in _named_entries(raw, "models", _MODEL_KEYS, problems):
        name = entry["name"]
        if name in (instances or {}):  # a model object handed over in Python: nothing to train or load
            specs.append(ModelSpec(name=name, label=str(entry.get("label", name)), instance=instances[name]))
            labels.add(specs[-1].label)
            continue
        if name not in known:
            problems.add(f"{where}.name", f"unknown model {name!r}.{did_you_mean(name, known)}")
        label = entry.get("label", name)
        if not isinstance(label, str) or not label:
            problems.add(f"{where}.label", f"must be a non-empty string, got {label!r}.")
            label = name
        if label in labels:
            problems.add(f"{where}.label", f"{label!r} is used twice; give each entry of a model a distinct 'label'.")
        labels.add(label)
        only = _model_datasets(entry, datasets, where, problems)
        overrides = entry.get("overrides") or {}
        if not isinstance(overrides, dict):
            problems.add(f"{where}.overrides", f"must be a mapping of constructor arguments, got {overrides!r}.")
            overrides = {}
        recipe = _string(entry, "recipe", None, problems, f"{where}.")
        checkpoint = entry.get("checkpoint")
        if checkpoint is not None:
            checkpoint = _check_checkpoint_entry(entry, list(only or datasets), where, problems)
        elif name in known and not getattr(MODELS[name], "trainable", True):
            problems.add(f"{where}.checkpoint", f"{name!r} is trained by its own code base, so it needs a checkpoint "
                         "(for example {format: state_dict, path: ..., factory: ...}).")
        elif name in known:
            for key, message in model_arg_problems(name, overrides):
                problems.add(f"{where}.overrides.{key}", message)
            if recipe is not None:
                try:
                    resolve_recipe(name, recipe)
                except RecipeError as err:
                    problems.add(f"{where}.recipe", str(err))
        specs.append(ModelSpec(name=name, label=label, recipe=recipe, overrides=overrides, checkpoint=checkpoint,
                               datasets=tuple(only) if only else None))
    return specs


def _model_datasets(entry: dict, datasets: list[str], where: str, problems: Problems) -> list[str] | None:
    only = entry.get("datasets")
    if only is None:
        return None
    if not isinstance(only, list) or not only or not all(isinstance(d, str) for d in only):
        problems.add(f"{where}.datasets", f"must be a non-empty list of the suite's dataset names, got {only!r}.")
        return None
    if set(only) - set(datasets):
        problems.add(f"{where}.datasets", f"{sorted(set(only) - set(datasets))} are not in the suite's datasets list.")
    return only


def _check_checkpoint_entry(entry: dict, datasets: list[str], where: str,
                            problems: Problems) -> str | dict[str, Any] | None:
    """A checkpoint entry is what it says: the stored model is ``name``, trained on each dataset it is used for."""
    checkpoint = entry["checkpoint"]
    if _is_foreign(checkpoint) or isinstance(checkpoint, str):
        mapping = {d: checkpoint for d in datasets}
    elif isinstance(checkpoint, dict) and all(isinstance(k, str) and (isinstance(v, str) or _is_foreign(v))
                                              for k, v in checkpoint.items()):
        mapping = checkpoint
    else:
        problems.add(f"{where}.checkpoint", f"must be a file path, a foreign checkpoint {{format: ..., path: ...}}, or "
                     f"a mapping of dataset name to either, got {checkpoint!r}.")
        return None
    for key in ("overrides", "recipe"):
        if entry.get(key):
            problems.add(f"{where}.{key}", f"does not apply to a checkpoint, whose model is rebuilt from the arguments "
                         f"stored in it; remove '{key}' or the 'checkpoint'.")
    for dataset in datasets:
        if dataset not in mapping:
            problems.add(f"{where}.checkpoint", f"no checkpoint for dataset {dataset!r}; add it to the mapping or "
                         "restrict the model with 'datasets'.")
    for dataset, path in mapping.items():
        if _is_foreign(path):
            _check_foreign(path, entry["name"], f"{where}.checkpoint", problems)
        else:
            _check_native(path, entry, dataset, where, problems)
    return checkpoint


def _is_foreign(value: Any) -> bool:
    return isinstance(value, dict) and "format" in value


def _check_foreign(spec: dict[str, Any], name: str, where: str, problems: Problems) -> None:
    """A foreign checkpoint: a known format, an existing path, options the format's adapter takes."""
    import inspect

    from aebench.adapters import ADAPTERS

    fmt = spec["format"]
    if not isinstance(fmt, str) or fmt not in ADAPTERS:
        problems.add(f"{where}.format", f"unknown checkpoint format {fmt!r}.{did_you_mean(fmt, list(ADAPTERS))}")
        return
    path = spec.get("path")
    if not isinstance(path, str) or not Path(path).exists():
        problems.add(f"{where}.path", f"{path!r} does not exist; give the {fmt} checkpoint's file or folder.")
    accepted = [p for p in inspect.signature(ADAPTERS[fmt]).parameters if p not in ("source", "model", "dataset",
                                                                                     "data_root")]
    for key in spec:
        if key not in ("format", "path") and key not in accepted:
            problems.add(f"{where}.{key}", f"not an option of the {fmt!r} format.{did_you_mean(key, accepted)}")


def _check_native(path: str, entry: dict, dataset: str, where: str, problems: Problems) -> None:
    from aebench.checkpoint import CheckpointError, load_model, read_metadata

    if not Path(path).is_file():
        problems.add(f"{where}.checkpoint", f"file {path!r} does not exist; train it or fix the path.")
        return
    try:
        meta = read_metadata(path)
        load_model(path)  # names, shapes, dtypes and finite values of every tensor, before any compute
    except CheckpointError as err:
        problems.add(f"{where}.checkpoint", str(err))
        return
    if meta["model"] != entry["name"]:
        problems.add(f"{where}.name", f"{entry['name']!r}, but {path} holds a {meta['model']!r} model; write "
                     f"name: {meta['model']} (and label: {entry.get('label', entry['name'])} to keep the row's "
                     "name).")
    trained_on = meta.get("dataset")
    if trained_on not in (None, dataset):
        problems.add(f"{where}.checkpoint", f"{path} was trained on {trained_on!r} but would be evaluated on "
                     f"{dataset!r}; give a per-dataset mapping.")


