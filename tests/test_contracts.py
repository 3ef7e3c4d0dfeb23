"""Contract tests for the plumbing: every setting a suite can give reaches the code that uses it.

Each case changes one setting of a tiny suite away from its default and checks that the consumer received the new
value: the trained checkpoint's metadata, the optimizer state, the rows, or the call that uses it (spied on). A
setting that is parsed but dropped on its way (as the suite's training block once was) fails here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors import safe_open

import aebench.runner.measure as measure
from aebench.attacks._problem import AttackProblem
from aebench.attacks.api import OPTIMIZERS
from aebench.checkpoint import read_metadata
from aebench.models.gmm_dae import GMMDAE
from aebench.results import read_rows
from aebench.runner import run_suite
from aebench.suite import load_suite

BASE = {
    "name": "contract",
    "version": 1,
    "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"}],
    "training": {"epochs": 1, "batch_size": 500},
    "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1], "options": {"steps": 2, "restarts": 1}}],
    "noise_baseline": False,
    "n_images": 2,
    "n_trials": 2,
    "device": "cpu",
    "examples": 1,
}


@dataclass
class Seen:
    """What a tiny run left behind and what its spies recorded."""

    output: Path
    cache: Path
    rows: Any = None
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def checkpoints(self) -> list[dict[str, Any]]:
        return [read_metadata(p) for p in sorted(self.cache.glob("*/checkpoint.safetensors"))]

    def optimizer_lr(self, epoch: int) -> float:
        import json

        (path,) = self.cache.glob(f"*/optimizer-e{epoch}.safetensors")
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["optimizer"])["param_groups"][0]["lr"]


def _spy(calls: dict[str, list], name: str, fn: Callable) -> Callable:
    @functools.wraps(fn)  # keeps the signature, which option validation reads
    def wrapper(*args, **kwargs):
        # Validation hands optimizers a stand-in problem to check option values; only attacks are recorded.
        if name not in OPTIMIZERS or isinstance(args[0], AttackProblem):
            calls.setdefault(name, []).append({"args": args, **kwargs})
        return fn(*args, **kwargs)

    return wrapper


@pytest.fixture
def run_tiny(tmp_path, monkeypatch):
    """Run the base suite with ``changes`` (top-level keys replaced) under spies; return what was seen."""

    def run(**changes) -> Seen:
        seen = Seen(tmp_path / "out", tmp_path / "cache")
        raw = {**BASE, "output": str(seen.output), "cache_dir": str(seen.cache), **changes}
        path = tmp_path / "suite.yaml"
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setattr(measure, "attack_in_chunks", _spy(seen.calls, "attack", measure.attack_in_chunks))
        monkeypatch.setattr(measure, "train_latent_classifier",
                            _spy(seen.calls, "downstream", measure.train_latent_classifier))
        monkeypatch.setitem(OPTIMIZERS._items, "pgd", _spy(seen.calls, "pgd", OPTIMIZERS["pgd"]))
        loss = GMMDAE.loss
        monkeypatch.setattr(GMMDAE, "loss", lambda self, x: (seen.calls.setdefault("loss", []).append(
            {"batch": x.shape[0]}), loss(self, x))[1])
        import aebench.fidelity as fidelity

        monkeypatch.setattr(fidelity, "fd_classifier", _spy(seen.calls, "fidelity", lambda *a, **k: 1.5))
        summary = run_suite(load_suite(path), progress=_quiet())
        assert not summary.failed, summary.failed
        seen.rows = read_rows(seen.output)
        return seen

    return run


def _quiet():
    from rich.console import Console

    from aebench.progress import ProgressLog

    return ProgressLog(Console(quiet=True), enabled=False)


def _training(seen: Seen) -> dict[str, Any]:
    (meta,) = seen.checkpoints()
    return meta["config"]["training"]


# ------------------------------------------------------------------------------------------------------ training
def test_training_epochs_reach_the_checkpoint_and_the_rows(run_tiny):
    seen = run_tiny(training={"epochs": 2, "batch_size": 500})
    (meta,) = seen.checkpoints()
    assert meta["epoch"] == 2 and meta["config"]["training"]["epochs"] == 2
    assert meta["config"]["sources"]["training.epochs"] == "suite"
    assert len(seen.calls["loss"]) == 2 * (6000 // 500)  # two epochs of steps were trained
    assert {r["training"]["epochs"] for r in seen.rows.settings} == {2}


def test_training_batch_size_reaches_the_loss(run_tiny):
    seen = run_tiny(training={"epochs": 1, "batch_size": 300})
    assert {c["batch"] for c in seen.calls["loss"]} == {300} and len(seen.calls["loss"]) == 20
    assert _training(seen)["batch_size"] == 300
    (meta,) = seen.checkpoints()
    assert meta["model_args"]["batch_size"] == 300  # the loss weights are estimated at the training batch size


def test_training_lr_reaches_the_optimizer(run_tiny):
    seen = run_tiny(training={"epochs": 1, "batch_size": 500, "lr": 1e-3})
    assert seen.optimizer_lr(1) == 1e-3 and _training(seen)["lr"] == 1e-3
    assert {r["training"]["lr"] for r in seen.rows.settings} == {1e-3}


def test_training_lr_schedule_reaches_the_optimizer(run_tiny):
    seen = run_tiny(training={"epochs": 2, "batch_size": 500, "lr": 1e-3, "lr_step_epochs": 1, "lr_gamma": 0.5})
    assert seen.optimizer_lr(1) == 1e-3 and seen.optimizer_lr(2) == pytest.approx(5e-4)
    assert _training(seen)["lr_step_epochs"] == 1 and _training(seen)["lr_gamma"] == 0.5


def test_model_overrides_reach_the_constructor(run_tiny):
    seen = run_tiny(models=[{"name": "robust_gmm_dae", "overrides": {"coupling": 0.25, "latent_noise": 0.0}}])
    (meta,) = seen.checkpoints()
    assert meta["model_args"]["coupling"] == 0.25 and meta["model_args"]["latent_noise"] == 0.0
    from aebench.checkpoint import load_model

    (path,) = seen.cache.glob("*/checkpoint.safetensors")
    model = load_model(path)
    assert model.coupling == 0.25 and model.latent_noise == 0.0
    assert {r["model_args"]["coupling"] for r in seen.rows.settings} == {0.25}


def test_a_recipe_file_reaches_the_training(run_tiny, tmp_path):
    recipe = tmp_path / "my_recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model": "gmm_dae", "model_args": {"lambda_rec": 250.0},
                                      "training": {"lr": 5e-4}}))
    seen = run_tiny(models=[{"name": "gmm_dae", "recipe": str(recipe)}])
    (meta,) = seen.checkpoints()
    assert meta["model_args"]["lambda_rec"] == 250.0 and meta["config"]["training"]["lr"] == 5e-4
    assert meta["config"]["sources"]["training.lr"] == "recipe" and meta["config"]["recipe"] == str(recipe)
    assert meta["config"]["training"]["epochs"] == 1  # the suite's block still wins over the recipe's


# ------------------------------------------------------------------------------------------------- the protocol
def test_n_images_and_n_trials_reach_the_attack_and_the_rows(run_tiny):
    seen = run_tiny(n_images=3, n_trials=4)
    (call,) = seen.calls["attack"]
    assert call["args"][1].shape[0] == 3 * 4
    assert sorted(set(seen.rows[seen.rows.attack == "latent"].trial)) == [0, 1, 2, 3]


def test_seeds_reach_the_cells_and_the_images(run_tiny):
    seen = run_tiny(seeds=[3, 4])
    assert set(seen.rows.seed) == {3, 4}
    first, second = (c["args"][1] for c in seen.calls["attack"])
    assert not (first == second).all()  # each seed draws its own trial images
    assert {m["seed"] for m in seen.checkpoints()} == {3, 4}


def test_budgets_reach_the_optimizer(run_tiny):
    seen = run_tiny(attacks=[{"name": "latent", "optimizer": "pgd", "budgets": [0.5, 2.5],
                              "options": {"steps": 2, "restarts": 1}}])
    assert sorted(c["args"][0].budget for c in seen.calls["pgd"]) == [0.5, 2.5]
    assert set(seen.rows[seen.rows.attack == "latent"].budget) == {0.5, 2.5}


def test_optimizer_options_reach_the_optimizer(run_tiny):
    seen = run_tiny(attacks=[{"name": "latent", "optimizer": "pgd", "budgets": [1],
                              "options": {"steps": 3, "restarts": 2, "step_size": 0.1}}])
    (call,) = seen.calls["pgd"]
    assert (call["steps"], call["restarts"], call["step_size"]) == (3, 2, 0.1)
    assert seen.rows.settings.iloc[0]["measurement"]["options"] == {"steps": 3, "restarts": 2, "step_size": 0.1}


def test_the_noise_baseline_switch_reaches_the_attacks(run_tiny):
    seen = run_tiny(noise_baseline=True)
    assert {c["optimizer"] for c in seen.calls["attack"]} == {"pgd", "noise"}
    assert set(seen.rows[seen.rows.attack == "latent"].optimizer) == {"pgd", "noise"}


def test_metrics_reach_the_rows(run_tiny):
    seen = run_tiny(metrics=["attack_loss", "l2_input_adv"])
    assert set(seen.rows[seen.rows.attack == "latent"].metric) == {"attack_loss", "l2_input_adv"}


def test_attack_batch_size_reaches_the_chunks(run_tiny):
    seen = run_tiny(attack_batch_size=3, n_images=2, n_trials=3)
    (call,) = seen.calls["attack"]
    assert call["chunk"] == 3
    assert [c["args"][0].x.shape[0] for c in seen.calls["pgd"]] == [3, 3]


def test_examples_reach_the_example_file(run_tiny):
    import numpy as np

    seen = run_tiny(examples=2)
    (path,) = seen.output.glob("cells/*/attack-latent-pgd-1.examples.npz")
    with np.load(path) as store:
        assert store["x"].shape[0] == 2 and "target" in store.files


# --------------------------------------------------------------------------------------- fidelity, downstream
def test_fidelity_settings_reach_fd_classifier(run_tiny):
    seen = run_tiny(fidelity={"n_samples": 77, "classifier_epochs": 5, "min_accuracy": 0.7})
    (call,) = seen.calls["fidelity"]
    assert call["args"][2] == 77 and call["classifier_epochs"] == 5 and call["min_accuracy"] == 0.7
    assert set(seen.rows[seen.rows.metric == "fd_classifier"].value) == {1.5}


def test_downstream_settings_reach_the_classifier_and_the_rows(run_tiny):
    seen = run_tiny(downstream={"budget": 1, "epochs": 3})
    (call,) = seen.calls["downstream"]
    assert call["epochs"] == 3
    attacked = seen.rows[seen.rows.metric == "downstream_attacked_accuracy"]
    assert set(attacked.budget) == {1.0} and set(attacked.optimizer) == {"pgd"} and len(attacked) == 2
    # The classifier is scored on the latent attack's own images: no second attack ran.
    assert len(seen.calls["attack"]) == 1
