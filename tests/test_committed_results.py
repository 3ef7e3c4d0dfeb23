"""The committed results in ``results/`` are what their suite files say.

Each folder is the output of one suite run. Its rows record the effective settings they were computed with; this
test recomputes what the suite file and the recipes ask for (independently of the resolver in ``aebench.config``)
and fails when a row disagrees, so a committed result can never claim, say, a training length it did not have.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aebench.recipes import TrainingSettings, load_recipe, resolve_recipe
from aebench.results import read_rows
from aebench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent
FOLDERS = sorted(p.parent for p in (REPO / "results").glob("*/suite.json"))


def test_there_are_committed_results():
    assert {f.name for f in FOLDERS} >= {"quickstart", "table2"}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_rows_match_their_suite_file(folder: Path):
    plan = json.loads((folder / "suite.json").read_text())
    suite = load_suite(REPO / plan["suite"]["path"], check_data=False)
    assert plan["command_line"] == {}, "committed results come from the suite file alone"
    assert Path(suite.output).name == folder.name or folder.name in plan["suite"]["output"]
    rows = read_rows(folder) if (folder / "cells").is_dir() else None
    if rows is None or rows.empty:
        pytest.skip(f"{folder.name} has no finished measurement yet")
    specs = {m.label: m for m in suite.models}
    attacks = {(a.name, a.optimizer): a for a in suite.attacks}
    for (dataset, label), group in rows.groupby(["dataset", "model"]):
        spec = specs[label]  # a row of a model the suite does not name fails here
        recipe = load_recipe(spec.name, dataset, resolve_recipe(spec.name, spec.recipe))
        training = {**dataclasses.asdict(TrainingSettings()), **recipe.training, **recipe.dataset_training,
                    **suite.training}
        model_args = {**recipe.model_args, **recipe.dataset_model_args, **spec.overrides}
        for settings in group.settings:
            assert settings["model"] == spec.name
            assert settings["training"] == training, f"{folder.name}/{label}: trained with {settings['training']}"
            assert {k: settings["model_args"].get(k) for k in model_args} == model_args
        for row in group[group.attack != "none"].itertuples():
            measured = row.settings["measurement"]
            if row.measurement == "downstream":
                assert measured["budget"] == suite.downstream.budget and measured["epochs"] == suite.downstream.epochs
                continue
            spec_attack = attacks.get((row.attack, row.optimizer))
            if spec_attack is None:  # the noise baseline of an objective
                assert row.optimizer == "noise" and suite.noise_baseline
            else:
                assert row.budget in spec_attack.budgets and measured["options"] == spec_attack.options
            assert (measured["n_images"], measured["n_trials"]) == (suite.n_images, suite.n_trials)
            assert row.seed in suite.seeds
