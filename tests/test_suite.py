"""Suite validation: every class of bad input is rejected before any compute, with a helpful message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aebench.suite import SuiteError, load_suite

REPO = Path(__file__).resolve().parent.parent

VALID = {
    "name": "tiny",
    "version": 1,
    "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"}, {"name": "robust_gmm_dae", "overrides": {"coupling": 0.25}}],
    "attacks": [{"name": "latent", "budgets": [1, 3]}, {"name": "max_damage", "budgets": [1]}],
    "n_images": 4,
    "n_trials": 2,
    "seeds": [0, 1],
}


def _write(tmp_path: Path, **changes) -> Path:
    raw = {**VALID, **changes}
    raw = {k: v for k, v in raw.items() if v is not None}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_suite_loads_and_expands_into_cells(tmp_path):
    suite = load_suite(_write(tmp_path))
    assert len(suite.cells()) == 1 * 2 * 2
    assert suite.attacks[0].budgets == (1.0, 3.0)


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"colour": "blue"}, "colour: unknown key"),
        ({"models": [{"name": "robust_gmm_dea"}]}, "Did you mean 'robust_gmm_dae'"),
        ({"models": [{"name": "gmm_dae", "optimiser": "x"}]}, "models[0].optimiser: unknown key"),
        ({"datasets": ["fashion_mnist_mnii"]}, "Did you mean 'fashion_mnist_mini'"),
        ({"attacks": [{"name": "latnt"}]}, "unknown attack 'latnt'"),
        ({"attacks": [{"name": "latent", "optimizer": "lbgfs"}]}, "Did you mean 'lbfgs'"),
        ({"attacks": [{"name": "latent", "budgets": [-1]}]}, "budget -1 must be a finite number ≥ 0"),
        ({"attacks": [{"name": "latent", "budgets": ["three"]}]}, "budget 'three' is not a number"),
        ({"attacks": [{"name": "latent", "budgets": []}]}, "attacks[0].budgets: must be a non-empty list"),
        ({"models": []}, "models: must be a non-empty list"),
        ({"datasets": None}, "datasets: is required"),
        ({"metrics": ["msssim_papr_input_adv"]}, "Did you mean 'msssim_paper_input_adv'"),
        ({"n_trials": 0}, "n_trials: must be a positive integer"),
        ({"training": {"epochs": "many"}}, "training.epochs: must be a positive integer"),
        ({"models": [{"name": "gmm_dae", "checkpoint": "nowhere/model.safetensors"}]}, "does not exist"),
        ({"downstream": {"budget": 2}}, "add that budget to a latent attack"),
        ({"attacks": [{"name": "latent", "optimizer": "pgd", "options": {"step": 5}}]}, "Did you mean 'steps'"),
        ({"attacks": [{"name": "latent", "optimizer": "pgd"}, {"name": "latent", "optimizer": "pgd"}]},
         "second 'latent' attack with optimizer 'pgd'"),
        ({"models": [{"name": "gmm_dae", "overrides": {"coupleing": 0.5}}]}, "not an argument of 'gmm_dae'"),
        ({"models": [{"name": "gmm_dae", "recipe": "no_such_recipe"}]}, "Recipe 'no_such_recipe'"),
        ({"noise_baseline": "false"}, "noise_baseline: must be true or false"),
        ({"training": {"lr_gamma": -1}}, "training.lr_gamma: must be a positive number"),
        ({"fidelity": {"n_sample": 10}}, "fidelity.n_sample: unknown key"),
        ({"tables": ["table4"]}, "unknown table 'table4'"),
        ({"models": [{"name": "gmm_dae", "datasets": ["svhn"]}]}, "are not in the suite's datasets"),
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_key_and_value(tmp_path, changes, expected):
    path = _write(tmp_path, **changes)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_a_checkpoint_of_another_dataset_is_rejected(tmp_path):
    from aebench.checkpoint import save_checkpoint
    from tests.helpers import build_model

    path = save_checkpoint(tmp_path / "m.safetensors", build_model("gmm_dae"), dataset="mnist", seed=0)
    suite_path = _write(tmp_path, models=[{"name": "gmm_dae", "checkpoint": str(path)}])
    with pytest.raises(SuiteError, match="was trained on 'mnist' but would be evaluated on 'fashion_mnist_mini'"):
        load_suite(suite_path)
    good = save_checkpoint(tmp_path / "g.safetensors", build_model("gmm_dae"), dataset="fashion_mnist_mini", seed=0)
    assert load_suite(_write(tmp_path, models=[{"name": "gmm_dae", "checkpoint": {"fashion_mnist_mini": str(good)}}]))


def test_missing_data_files_are_reported_before_compute(tmp_path):
    path = _write(tmp_path, datasets=["svhn"], data_root=str(tmp_path / "nothing-here"))
    with pytest.raises(SuiteError, match="svhn"):
        load_suite(path)


def test_all_problems_are_reported_together(tmp_path):
    path = _write(tmp_path, colour="blue", n_trials=0)
    with pytest.raises(SuiteError, match=r"2 problem\(s\)"):
        load_suite(path)


@pytest.mark.parametrize("suite_file", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_are_valid(suite_file):
    load_suite(suite_file, check_data=False)
