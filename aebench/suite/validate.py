"""Reading and checking a suite file: every problem is found before any compute and reported at once.

``load_suite(path)`` reads the YAML with ``yaml.safe_load`` (no code execution), checks the type and range of every
value, every name against its registry (with "did you mean"), every model override against the constructor's
annotations, every optimizer option against the optimizer's, every data, checkpoint and weights file for existence,
and each checkpoint against the entry that names it. All problems are raised together as one :class:`SuiteError`
naming the file, the key, the value and a fix.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any

import yaml

from aebench.suite._checks import (
    Problems,
    _check_keys,
    _int,
    _is_int,
    _named_entries,
    _names,
    _string,
    did_you_mean,
)
from aebench.suite.models import parse_models
from aebench.suite.types import (
    TABLES,
    AttackSpec,
    DownstreamSpec,
    FidelitySpec,
    Suite,
    SuiteError,
    field_default,
    field_names,
)

_SUITE_KEYS = field_names(Suite) - {"path", "given"}
_ATTACK_KEYS = field_names(AttackSpec)
_FIDELITY_KEYS = field_names(FidelitySpec)
_DOWNSTREAM_KEYS = field_names(DownstreamSpec)


# --------------------------------------------------------------------------------------------------------- attacks
def _parse_budgets(value: Any, where: str, problems: Problems) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        problems.add(where, f"must be a non-empty list of numbers, got {value!r}.")
        return ()
    budgets = []
    for b in value:
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            problems.add(where, f"budget {b!r} is not a number; write L2 budgets like [1, 3, 5].")
        elif not math.isfinite(b) or b < 0:
            problems.add(where, f"budget {b!r} must be a finite number ≥ 0 (an L2 norm in [0, 1] pixel units).")
        else:
            budgets.append(float(b))
    if len(set(budgets)) != len(budgets):
        problems.add(where, f"lists a budget twice: {value!r}.")
    return tuple(budgets)


def _option_problems(optimizer: str, options: dict[str, Any]) -> list[tuple[str, str]]:
    """``(option, message)`` for options an optimizer does not take or whose value has the wrong type."""
    from aebench.attacks import OPTIMIZERS, optimizer_options
    from aebench.config import describe_type, value_matches

    accepted = list(optimizer_options(optimizer))
    hints = typing.get_type_hints(OPTIMIZERS[optimizer])
    problems = []
    for key, value in options.items():
        if key not in accepted:
            problems.append((key, f"not an option of {optimizer!r}.{did_you_mean(key, accepted)}"))
        elif key in hints and not value_matches(value, hints[key]):
            problems.append((key, f"must be {describe_type(hints[key])}, got {value!r}."))
    return problems


class _OptionsAccepted(Exception):
    """Raised by :class:`_StandInProblem` as soon as an optimizer, its options checked, starts on the problem."""


class _StandInProblem:
    """Handed to an optimizer at validation time instead of an attack problem.

    Every built-in optimizer checks its options before it touches the problem, so the first use of this one means
    the options passed those checks; no attack runs.
    """

    def __getattr__(self, name: str) -> Any:
        raise _OptionsAccepted


def _refused_values(optimizer: str, options: dict[str, Any]) -> str | None:
    """The optimizer's own message for an option value it refuses (a range, a choice, an ensemble member), if any.

    Done here so that such a value fails ``aebench validate`` rather than the measurement, after training.
    """
    from aebench.attacks import OPTIMIZERS

    try:
        OPTIMIZERS[optimizer](_StandInProblem(), **options)
    except _OptionsAccepted:
        return None
    except ValueError as err:
        return str(err)
    except Exception:  # an optimizer that uses the problem first: its checks run with the attack, as before
        return None
    return None


def _parse_attacks(raw: dict, problems: Problems) -> list[AttackSpec]:
    from aebench.attacks import ATTACKS, DEFAULT_BUDGETS, DEFAULT_OPTIMIZER, OPTIMIZERS

    specs, seen = [], set()
    for where, entry in _named_entries(raw, "attacks", _ATTACK_KEYS, problems):
        if entry["name"] not in ATTACKS:
            problems.add(f"{where}.name",
                         f"unknown attack {entry['name']!r}.{did_you_mean(entry['name'], list(ATTACKS))}")
        optimizer = entry.get("optimizer", DEFAULT_OPTIMIZER)
        if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
            problems.add(f"{where}.optimizer",
                         f"unknown optimizer {optimizer!r}.{did_you_mean(optimizer, list(OPTIMIZERS))}")
            optimizer = str(optimizer)
        budgets = _parse_budgets(entry.get("budgets", list(DEFAULT_BUDGETS)), f"{where}.budgets", problems)
        options = entry.get("options") or {}
        if not isinstance(options, dict):
            problems.add(f"{where}.options", f"must be a mapping of optimizer options, got {options!r}.")
            options = {}
        elif optimizer in OPTIMIZERS:
            found = _option_problems(optimizer, options)
            for key, message in found:
                problems.add(f"{where}.options.{key}", message)
            refused = None if found else _refused_values(optimizer, options)
            if refused:
                problems.add(f"{where}.options", refused)
        if (entry["name"], optimizer) in seen:
            problems.add(where, f"a second {entry['name']!r} attack with optimizer {optimizer!r}: rows could not tell "
                         "them apart; merge their budgets into one entry.")
        seen.add((entry["name"], optimizer))
        specs.append(AttackSpec(name=entry["name"], optimizer=optimizer, budgets=budgets, options=options))
    return specs


def _parse_metrics(raw: dict, problems: Problems) -> tuple[str, ...] | None:
    from aebench.metrics import METRICS

    if raw.get("metrics") is None:
        return None
    names = _names(raw, "metrics", problems)
    for name in names:
        if name not in METRICS:
            problems.add("metrics", f"unknown metric {name!r}.{did_you_mean(name, list(METRICS))}")
    return tuple(names)


# ----------------------------------------------------------------------------------------------- other sections
def _parse_training(raw: dict, problems: Problems) -> dict[str, Any]:
    from aebench.recipes import training_problems

    training = raw.get("training") or {}
    if not isinstance(training, dict):
        problems.add("training", f"must be a mapping, got {training!r}.")
        return {}
    for key, message in training_problems(training):
        problems.add(f"training.{key}", message)
    return training


def _parse_datasets(raw: dict, problems: Problems, data_root: str | None, check_data: bool) -> list[str]:
    from aebench.data import DATASETS, missing_files_message

    names = _names(raw, "datasets", problems)
    for name in names:
        if name not in DATASETS:
            problems.add("datasets", f"unknown dataset {name!r}.{did_you_mean(name, list(DATASETS))}")
        elif check_data:
            missing = missing_files_message(name, data_root)
            if missing:
                problems.add("datasets", missing)
    return names


def _section(raw: dict, key: str, allowed: set[str], problems: Problems) -> dict | None:
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


def _parse_fidelity(raw: dict, problems: Problems) -> FidelitySpec | None:
    section = _section(raw, "fidelity", _FIDELITY_KEYS, problems)
    if section is None:
        return None
    n = _int(section, "n_samples", field_default(FidelitySpec, "n_samples"), problems, "fidelity.", minimum=2)
    weights = _string(section, "inception_weights", None, problems, "fidelity.")
    if weights is not None and not Path(weights).is_file():
        problems.add("fidelity.inception_weights", f"file {weights!r} does not exist; give the path of an Inception "
                     "weights file (see `aebench.fidelity.inception`) or remove the key.")
    epochs = _int(section, "classifier_epochs", None, problems, "fidelity.")
    accuracy = section.get("min_accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                 or not 0 < accuracy <= 1):
        problems.add("fidelity.min_accuracy", f"must be a fraction in (0, 1] (e.g. 0.9), got {accuracy!r}.")
        accuracy = None
    return FidelitySpec(n_samples=n, inception_weights=weights, classifier_epochs=epochs,
                        min_accuracy=None if accuracy is None else float(accuracy))


def _parse_downstream(raw: dict, problems: Problems) -> DownstreamSpec | None:
    section = _section(raw, "downstream", _DOWNSTREAM_KEYS, problems)
    if section is None:
        return None
    default = field_default(DownstreamSpec, "budget")
    budget = _parse_budgets([section.get("budget", default)], "downstream.budget", problems)
    return DownstreamSpec(budget=budget[0] if budget else default,
                          epochs=_int(section, "epochs", field_default(DownstreamSpec, "epochs"), problems,
                                      "downstream."))


def _parse_tables(raw: dict, problems: Problems) -> tuple[str, ...]:
    tables = _names(raw, "tables", problems, default=list(field_default(Suite, "tables")))
    for name in tables:
        if name not in TABLES:
            problems.add("tables", f"unknown table {name!r}.{did_you_mean(name, list(TABLES))}")
    return tuple(tables)


def _parse_seeds(raw: dict, problems: Problems) -> tuple[int, ...]:
    seeds = raw.get("seeds", list(field_default(Suite, "seeds")))
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        problems.add("seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}.")
        return field_default(Suite, "seeds")
    if len(set(seeds)) != len(seeds):
        problems.add("seeds", f"lists a seed twice: {seeds!r}.")
    return tuple(seeds)


def _parse_device(raw: dict, problems: Problems) -> str:
    from aebench.utils import check_device

    device = raw.get("device", field_default(Suite, "device"))
    problem = check_device(device)
    if problem:
        problems.add("device", problem)
    return str(device)


def _parse_paper_results(raw: dict, problems: Problems) -> str | None:
    from aebench.paper import known_paper_results, paper_results_path

    name = _string(raw, "paper_results", None, problems)
    if name is not None and not paper_results_path(name).is_file():
        problems.add("paper_results", f"{name!r} is neither a CSV file nor a shipped table."
                     f"{did_you_mean(name, known_paper_results())}")
    return name


def _check_sizes(suite: Suite, problems: Problems) -> None:
    """``n_images`` must fit every dataset's test split."""
    from aebench.data import DataError, split_size

    for dataset in suite.datasets:
        try:
            size = split_size(dataset, "test", suite.data_root)
        except (DataError, KeyError):
            continue  # a missing or unknown dataset is reported already
        if suite.n_images > size:
            problems.add("n_images", f"{suite.n_images} exceeds the {size} test images of {dataset}; lower n_images.")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise SuiteError(f"Suite file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SuiteError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: a suite must be a YAML mapping with keys such as name, datasets, models, attacks.")
    return raw


def load_suite(path: str | Path, check_data: bool = True) -> Suite:
    """Read and validate a suite file.

    Args:
        path: The YAML file.
        check_data: Also check that every dataset's files are present and large enough for ``n_images``.

    Raises:
        SuiteError: Listing every problem found, each with its key, value and a fix.
    """
    path = Path(path)
    return parse_suite(_read_yaml(path), path, check_data)


def parse_suite(raw: dict[str, Any], path: str | Path, check_data: bool = True,
                instances: dict[str, Any] | None = None) -> Suite:
    """Validate a suite given as a mapping (what :func:`load_suite` reads from YAML).

    Args:
        raw: The suite's keys and values.
        path: Where it came from, for messages and the default output folder.
        check_data: Also check the dataset files.
        instances: Model objects handed over in Python, by the ``name`` of their ``models`` entry; such an entry
            is checked like any other except that its name need not be registered.

    Raises:
        SuiteError: Listing every problem found, each with its key, value and a fix.
    """
    path = Path(path)
    instances = instances or {}
    problems = Problems(str(path))
    _check_keys(raw, _SUITE_KEYS, "", problems)
    for key in ("name", "version"):
        if key not in raw:
            problems.add(key, "is required.")
        elif not isinstance(raw[key], (str, int, float)) or isinstance(raw[key], bool):
            problems.add(key, f"must be a string or a number, got {raw[key]!r}.")
    data_root = _string(raw, "data_root", None, problems)
    datasets = _parse_datasets(raw, problems, data_root, check_data)
    attacks = _parse_attacks(raw, problems)
    suite = Suite(
        name=str(raw.get("name", path.stem)), version=str(raw.get("version", "0")), path=str(path),
        datasets=tuple(datasets), models=tuple(parse_models(raw, datasets, problems, instances)),
        attacks=tuple(attacks),
        output=_string(raw, "output", str(Path("results") / path.stem), problems),
        training=_parse_training(raw, problems), metrics=_parse_metrics(raw, problems),
        noise_baseline=_boolean(raw, "noise_baseline", problems),
        n_images=_int(raw, "n_images", field_default(Suite, "n_images"), problems),
        n_trials=_int(raw, "n_trials", field_default(Suite, "n_trials"), problems),
        seeds=_parse_seeds(raw, problems), device=_parse_device(raw, problems),
        cache_dir=_string(raw, "cache_dir", field_default(Suite, "cache_dir"), problems), data_root=data_root,
        attack_batch_size=_int(raw, "attack_batch_size", field_default(Suite, "attack_batch_size"), problems),
        examples=_int(raw, "examples", field_default(Suite, "examples"), problems, minimum=0),
        description=_string(raw, "description", field_default(Suite, "description"), problems),
        paper_results=_parse_paper_results(raw, problems), tables=_parse_tables(raw, problems),
        fidelity=_parse_fidelity(raw, problems), downstream=_parse_downstream(raw, problems),
        given=tuple(sorted(k for k in raw if k in _SUITE_KEYS)),
    )
    downstream = suite.downstream
    if downstream is not None and not any(a.name == "latent" and a.optimizer != "noise"
                                          and downstream.budget in a.budgets for a in attacks):
        problems.add("downstream.budget", f"the downstream accuracy reuses the latent attack at "
                     f"λ={downstream.budget:g}; add that budget to a latent attack in 'attacks'.")
    if check_data:
        _check_sizes(suite, problems)
    problems.raise_if_any()
    return suite


def _boolean(raw: dict, key: str, problems: Problems) -> bool:
    default = field_default(Suite, key)
    value = raw.get(key, default)
    if not isinstance(value, bool):
        problems.add(key, f"must be true or false, got {value!r}.")
        return default
    return value
