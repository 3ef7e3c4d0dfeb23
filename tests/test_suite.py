"""Suite validation: every class of bad input is rejected before any compute, with a helpful message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
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
    from aebench.runner import plan_suite

    suite = load_suite(_write(tmp_path))
    assert len(plan_suite(suite)) == 1 * 2 * 2
    assert suite.attacks[0].budgets == (1.0, 3.0)
    assert suite.output == "results/suite"  # the default: results/<file name>


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
        # Values of the wrong type: each a clear problem, never a TypeError traceback.
        ({"datasets": [["fashion_mnist_mini"]]}, "datasets[0]: must be a name (a string)"),
        ({"attacks": [{"name": ["latent"]}]}, "attacks[0]: must be a attack name or a mapping with a string 'name'"),
        ({"models": [{"name": "gmm_dae", "checkpoint": 5}]},
         "must be a file path, a foreign checkpoint {format: ..., path: ...}, or a mapping"),
        ({"models": [{"name": "gmm_dae", "overrides": {"latent_dim": "abc"}}]},
         "models[0].overrides.latent_dim: must be an integer, got 'abc'"),
        ({"models": [{"name": "robust_gmm_dae", "overrides": {"ks_form": "halved"}}]}, "must be 'pooled' or 'split'"),
        ({"attacks": [{"name": "latent", "optimizer": "pgd", "options": {"steps": "ten"}}]},
         "attacks[0].options.steps: must be an integer, got 'ten'"),
        ({"attacks": [{"name": "latent", "optimizer": "pgd", "options": {"steps": -3}}]},
         "attacks[0].options: pgd option steps must be a positive integer, got -3"),
        ({"attacks": [{"name": "latent", "optimizer": "pgd", "options": {"schedule": "cosin"}}]},
         "pgd option schedule must be one of ('cosine', 'step', 'constant'), got 'cosin'"),
        ({"attacks": [{"name": "latent", "optimizer": "ensemble", "options": {"members": ["bogus"]}}]},
         "ensemble members ['bogus'] are not attack optimizers"),
        ({"attacks": [{"name": "latent", "optimizer": "lbfgs", "options": {"max_iter": 0}}]},
         "lbfgs option max_iter must be a positive integer, got 0"),
        ({"attacks": [{"name": "latent", "optimizer": "apgd", "options": {"restarts": 0}}]},
         "apgd option restarts must be a positive integer, got 0"),
        ({"device": "gpu"}, "device: 'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps"),
        ({"n_images": 5000}, "n_images: 5000 exceeds the 1000 test images of fashion_mnist_mini"),
        ({"seeds": [0, "one"]}, "seeds: must be a non-empty list of non-negative integers"),
        ({"output": ["a", "b"]}, "output: must be a string"),
        ({"fidelity": {"min_accuracy": 80}}, "fidelity.min_accuracy: must be a fraction in (0, 1]"),
        ({"fidelity": {"classifier_epochs": 0}}, "fidelity.classifier_epochs: must be a positive integer"),
        ({"training": {"lr": True}}, "training.lr: must be a positive number"),
        ({"paper_results": "saseendran2021"}, "Did you mean 'saseendran2022'"),
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


def _checkpoint(tmp_path, name="gmm_dae", dataset="fashion_mnist_mini"):
    from aebench.checkpoint import save_checkpoint
    from tests.helpers import build_model

    return save_checkpoint(tmp_path / f"{name}.safetensors", build_model(name), dataset=dataset, seed=0)


def test_a_checkpoint_entry_is_what_it_says(tmp_path):
    robust = _checkpoint(tmp_path, "robust_gmm_dae")
    with pytest.raises(SuiteError, match=r"models\[0\]\.name: 'vae', but .* holds a 'robust_gmm_dae' model; write "
                       r"name: robust_gmm_dae \(and label: vae"):
        load_suite(_write(tmp_path, models=[{"name": "vae", "checkpoint": str(robust)}]))
    with pytest.raises(SuiteError, match=r"models\[0\]\.overrides: does not apply to a checkpoint"):
        load_suite(_write(tmp_path, models=[{"name": "robust_gmm_dae", "checkpoint": str(robust),
                                             "overrides": {"coupling": 0.1}}]))
    renamed = load_suite(_write(tmp_path, models=[{"name": "robust_gmm_dae", "label": "theirs",
                                                   "checkpoint": str(robust)}]))
    assert renamed.models[0].label == "theirs"


def test_a_damaged_checkpoint_is_rejected_before_compute(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from aebench.checkpoint import read_metadata

    good = _checkpoint(tmp_path)
    meta = read_metadata(good)
    tensors = load_file(str(good))
    not_json = tmp_path / "not_json.safetensors"
    save_file(tensors, str(not_json), metadata={"aebench": "{model: gmm_dae"})
    int32 = tmp_path / "int32.safetensors"
    save_file({k: v.to(torch.int32) if v.is_floating_point() else v for k, v in tensors.items()}, str(int32),
              metadata={"aebench": json.dumps(meta)})
    nan = tmp_path / "nan.safetensors"
    save_file({k: v * float("nan") if v.is_floating_point() else v for k, v in tensors.items()}, str(nan),
              metadata={"aebench": json.dumps(meta)})
    for path, expected in ((not_json, "metadata is not valid JSON"), (int32, "dtype torch.int32, the model has "
                                                                                "torch.float32"),
                           (nan, "holds NaN or infinite values")):
        with pytest.raises(SuiteError, match=expected):
            load_suite(_write(tmp_path, models=[{"name": "gmm_dae", "checkpoint": str(path)}]))


def test_a_data_root_with_part_of_a_dataset_is_reported_not_completed_from_elsewhere(tmp_path):
    import shutil

    from aebench.data.paths import SYSTEM_DIRS

    system = SYSTEM_DIRS["fashion_mnist"][0]
    if not (system / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("needs the Debian package dataset-fashion-mnist")
    partial = tmp_path / "data" / "fashion_mnist"
    partial.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(system / name, partial / name)
    with pytest.raises(SuiteError, match=r"lacks t10k-images-idx3-ubyte\[\.gz\], t10k-labels-idx1-ubyte"):
        load_suite(_write(tmp_path, datasets=["fashion_mnist"], data_root=str(tmp_path / "data")))


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
