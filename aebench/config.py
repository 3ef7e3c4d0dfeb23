"""The effective configuration of a training run: every layer merged once, each value knowing where it came from.

Layers, lowest first (a later layer replaces a value only for the keys it actually gives):

1. ``default``: the model constructor's defaults and :class:`~aebench.recipes.TrainingSettings`' defaults;
2. ``dataset``: what the dataset provides (image shape, latent size, GMM components, training-set size);
3. ``recipe``: the top of the model's recipe file (``baselines/<model>.yaml``);
4. ``recipe datasets.<name>``: the recipe's block for the dataset;
5. ``suite``: the suite entry's ``overrides`` and the suite's ``training`` block;
6. ``command line``: ``aebench train``/``run`` options that were given.

"Not given" means the key is absent, never ``None``: ``lr_step_epochs: null`` in a suite is a value (no step
schedule). Command-line options that were left out are dropped before they become a layer, which is the one place
where ``None`` means "unset".

The result, :class:`TrainingConfig`, is frozen and hashed: the training cache key, the checkpoint metadata, every
result row and ``aebench validate --explain`` all read this one object.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aebench.data import data_fingerprint, dataset_info, split_size
from aebench.fingerprint import training_fingerprint
from aebench.models import MODELS
from aebench.recipes import RecipeError, TrainingSettings, load_recipe, resolve_recipe, training_problems
from aebench.utils import jsonable, stable_hash

DEFAULT, DATASET, RECIPE, SUITE, COMMAND_LINE = "default", "dataset", "recipe", "suite", "command line"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides the weights a training run produces, resolved once before any compute.

    Attributes:
        model: Registered model name.
        dataset: Dataset name.
        seed: Seeds initialisation, batch order and all training noise.
        model_args: The constructor arguments, as passed (dataset-provided ones included).
        training: The training settings.
        data: Fingerprint of the dataset's files (:func:`aebench.data.data_fingerprint`).
        code: Fingerprint of the training code (:func:`aebench.fingerprint.training_fingerprint`).
        sources: Where each setting came from, keyed ``model_args.<name>`` / ``training.<name>``.
        defaults: Constructor defaults that no layer replaced (shown by ``--explain``, not passed).
        recipe: The recipe file read, or ``"<defaults>"``.
    """

    model: str
    dataset: str
    seed: int
    model_args: dict[str, Any]
    training: TrainingSettings
    data: str
    code: str
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    defaults: dict[str, Any] = field(default_factory=dict, compare=False)
    recipe: str = "<defaults>"

    def settings(self) -> dict[str, Any]:
        """What decides the weights, apart from the code: model, dataset, data, seed, arguments, training."""
        return jsonable({"model": self.model, "dataset": self.dataset, "data": self.data, "seed": self.seed,
                         "model_args": self.model_args, "training": dataclasses.asdict(self.training)})

    def settings_key(self) -> str:
        """Hash of :meth:`settings` (equal for runs that differ only in the code that trained them)."""
        return stable_hash(self.settings())

    def key(self) -> str:
        """Hash of the settings and the code fingerprint: the training cache key."""
        return stable_hash({**self.settings(), "code": self.code})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, written into checkpoints and rows."""
        return {**self.settings(), "code": self.code, "key": self.key(), "recipe": self.recipe,
                "sources": dict(self.sources)}

    def explain(self) -> list[tuple[str, Any, str]]:
        """``(setting, value, source)`` for every setting, constructor defaults included."""
        lines = [(f"training.{k}", v, self.sources.get(f"training.{k}", DEFAULT))
                 for k, v in dataclasses.asdict(self.training).items()]
        lines += [(f"model_args.{k}", v, self.sources.get(f"model_args.{k}", DEFAULT))
                  for k, v in sorted(self.model_args.items())]
        lines += [(f"model_args.{k}", v, DEFAULT) for k, v in sorted(self.defaults.items())]
        return lines


def differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two nested settings dicts, e.g. ``training.lr: 0.0002 (saved) vs 0.001``."""
    found = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += differences(a, b, f"{prefix}{key}.")
        elif jsonable(a) != jsonable(b):
            found.append(f"{prefix}{key}: {a!r} (saved) vs {b!r} (now)")
    return found


def _layer(values: dict[str, Any], sources: dict[str, str], prefix: str, layer: Mapping[str, Any],
           source: str) -> None:
    for key, value in layer.items():
        values[key] = value
        sources[f"{prefix}{key}"] = source


def dataset_model_args(model: str, dataset: str, batch_size: int, data_root: str | None = None) -> dict[str, Any]:
    """Constructor arguments a dataset provides, limited to those the model's constructor accepts.

    Image shape, latent size and number of GMM modes come from the dataset (DESIGN.md); the training set size and
    batch size are offered to models whose objectives need them (β-TCVAE's estimator, loss weights estimated at the
    batch size).
    """
    params = constructor_parameters(model)
    info = dataset_info(dataset)
    offered: dict[str, Any] = {"image_shape": list(info.image_shape), "latent_dim": info.latent_dim,
                               "num_components": info.num_components, "batch_size": batch_size}
    if "dataset_size" in params:  # reading the size touches the files; only models that need it pay for it
        offered["dataset_size"] = split_size(dataset, "train", data_root)
    return {k: v for k, v in offered.items() if k in params}


def constructor_parameters(model: str) -> dict[str, inspect.Parameter]:
    """The named parameters of a registered model's constructor (no ``self``, no ``*args``/``**kwargs``)."""
    params = inspect.signature(MODELS[model]).parameters
    return {n: p for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def resolve_training(
    model: str,
    dataset: str,
    *,
    seed: int = 0,
    recipe: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    suite_training: Mapping[str, Any] | None = None,
    command_line: Mapping[str, Any] | None = None,
    data_root: str | None = None,
) -> TrainingConfig:
    """Merge the layers of the module docstring into one :class:`TrainingConfig`.

    Args:
        model: Registered model name.
        dataset: Dataset name.
        seed: Training seed.
        recipe: A recipe name or YAML path (default: the model's own recipe, if any).
        overrides: Constructor arguments from the suite entry.
        suite_training: The suite's ``training`` block.
        command_line: Training settings given on the command line (absent keys only, no ``None``).
        data_root: Where the dataset files are.

    Raises:
        RecipeError: For a missing or malformed recipe, or training settings out of range.
        ValueError: For model arguments the constructor does not take or of the wrong type.
    """
    cls = MODELS[model]
    layers = load_recipe(model, dataset, resolve_recipe(model, recipe))
    training: dict[str, Any] = {}
    sources: dict[str, str] = {}
    block = f"{RECIPE} datasets.{dataset}"
    for layer, source in ((layers.training, RECIPE), (layers.dataset_training, block),
                          (suite_training or {}, SUITE), (command_line or {}, COMMAND_LINE)):
        problems = training_problems(dict(layer))
        if problems:
            raise RecipeError("; ".join(f"training.{k} ({source}) {m}" for k, m in problems))
        _layer(training, sources, "training.", layer, source)
    settings = TrainingSettings(**training)

    args: dict[str, Any] = {}
    provided = dataset_model_args(model, dataset, settings.batch_size, data_root)
    _layer(args, sources, "model_args.", provided, DATASET)
    for layer, source in ((layers.model_args, RECIPE), (layers.dataset_model_args, block), (overrides or {}, SUITE)):
        _layer(args, sources, "model_args.", layer, source)
    problems = model_arg_problems(model, args)
    if problems:
        raise ValueError(f"Model {model!r}: " + "; ".join(f"{k} ({sources.get('model_args.' + k)}) {m}"
                                                           for k, m in problems))
    params = constructor_parameters(model)
    defaults = {n: p.default for n, p in params.items() if n not in args and p.default is not p.empty}
    return TrainingConfig(model=model, dataset=dataset, seed=int(seed), model_args=jsonable(args), training=settings,
                          data=data_fingerprint(dataset, data_root), code=training_fingerprint(cls),
                          sources=sources, defaults=jsonable(defaults), recipe=layers.source)


# ------------------------------------------------------------------------------------------- type checks of arguments
def model_arg_problems(model: str, args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(argument, message)`` for each argument the constructor does not take or whose value has the wrong type.

    Types come from the constructor's annotations; an argument without an annotation accepts anything.
    """
    params = constructor_parameters(model)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(MODELS[model]).parameters.values())
    try:
        hints = typing.get_type_hints(MODELS[model].__init__)
    except Exception:  # unresolvable annotations (a plugin's forward references): check names only
        hints = {}
    problems = []
    for name, value in args.items():
        if name not in params:
            if not takes_any:
                problems.append((name, f"is not an argument of {model!r}; it takes {', '.join(sorted(params))}."))
            continue
        expected = hints.get(name)
        if expected is not None and not value_matches(value, expected):
            problems.append((name, f"must be {describe_type(expected)}, got {value!r}."))
    return problems


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether a YAML/JSON value fits a type annotation (lists stand for tuples; ints are accepted as floats)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(value_matches(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list, Sequence) or annotation in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(value_matches(v, a) for v, a in zip(value, args, strict=True))
        item = args[0] if args else Any
        return all(value_matches(v, item) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def describe_type(annotation: Any) -> str:
    """A short readable form of an annotation, e.g. ``an integer`` or ``'pooled' or 'split'``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(describe_type(a) for a in args)
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in args)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    if origin in (tuple, list, Sequence):
        return "a list"
    return getattr(annotation, "__name__", str(annotation))
