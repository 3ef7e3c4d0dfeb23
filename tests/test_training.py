"""Training: loss falls on tiny data, resume continues from the saved epoch, divergence stops clearly."""

from __future__ import annotations

import json

import pytest
import torch

import aebench.training as training
from aebench.checkpoint import load_model, read_metadata
from aebench.config import resolve_training
from aebench.data import ImageDataset, dataset_info


def _train(model: str, run_dir, seed: int = 0, **settings):
    """Train on the tiny data with ``settings`` given as command-line training settings."""
    config = resolve_training(model, "fashion_mnist_mini", seed=seed, command_line=settings)
    return training.train(config, run_dir=run_dir)


@pytest.fixture
def tiny_data(monkeypatch):
    """Replace the dataset loader with 200 train / 50 test structured images (no files)."""
    gen = torch.Generator().manual_seed(0)
    info = dataset_info("fashion_mnist_mini")

    def make(n: int) -> ImageDataset:
        labels = torch.randint(0, 10, (n,), generator=gen)
        base = torch.zeros(n, 1, 32, 32)
        for k in range(10):  # one bright band per class: easy structure to learn
            base[labels == k, :, 3 * k : 3 * k + 3, :] = 1.0
        noisy = (base * 0.8 + 0.2 * torch.rand(n, 1, 32, 32, generator=gen)).clamp(0, 1)
        return ImageDataset(info, "train", (noisy * 255).round().to(torch.uint8), labels)

    sets = {"train": make(200), "test": make(50)}
    monkeypatch.setattr(training, "load_dataset", lambda name, split, root=None: sets[split])
    return sets


def test_training_lowers_the_loss_and_writes_a_self_describing_checkpoint(tiny_data, tmp_path):
    result = _train("robust_gmm_dae", tmp_path / "run", epochs=4, batch_size=20)
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    meta = read_metadata(result.checkpoint)
    assert meta["model"] == "robust_gmm_dae" and meta["epoch"] == 4 and meta["seed"] == 0
    assert meta["dataset"] == "fashion_mnist_mini" and meta["config"]["training"]["batch_size"] == 20
    assert meta["model_args"]["batch_size"] == 20 and "torch" in meta["versions"]
    assert result.samples.exists() and result.test_mse is not None
    x = tiny_data["test"].batch(slice(0, 8))
    with torch.no_grad():
        torch.testing.assert_close(load_model(result.checkpoint).reconstruct(x), result.model.reconstruct(x))


def test_resume_continues_from_the_saved_epoch_and_matches_an_uninterrupted_run(tiny_data, tmp_path):
    full = _train("gmm_dae", tmp_path / "full", seed=1, epochs=3, batch_size=20)
    # A run of 2 epochs interrupted: the checkpoint says epoch 2 of 3.
    split = resolve_training("gmm_dae", "fashion_mnist_mini", seed=1, command_line={"epochs": 3, "batch_size": 20})
    real_save = training._save_epoch

    def stop_after_two(run_dir, model, optimizer, history, meta):
        real_save(run_dir, model, optimizer, history, meta)
        if meta["epoch"] == 2:
            raise KeyboardInterrupt

    training._save_epoch = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            training.train(split, run_dir=tmp_path / "split")
    finally:
        training._save_epoch = real_save
    resumed = training.train(split, run_dir=tmp_path / "split")
    history = [json.loads(line) for line in (tmp_path / "split" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_resume_refuses_a_run_dir_of_another_configuration_naming_the_difference(tiny_data, tmp_path):
    _train("gmm_dae", tmp_path / "r", epochs=1, batch_size=20)
    with pytest.raises(ValueError, match=r"training\.lr: 0\.0002 \(saved\) vs 0\.001 \(now\)"):
        _train("gmm_dae", tmp_path / "r", epochs=1, batch_size=20, lr=1e-3)
    with pytest.raises(ValueError, match=r"seed: 0 \(saved\) vs 5 \(now\)"):
        _train("gmm_dae", tmp_path / "r", seed=5, epochs=1, batch_size=20)
    config = resolve_training("gmm_dae", "fashion_mnist_mini", command_line={"epochs": 1, "batch_size": 20})
    changed = type(config)(**{**config.__dict__, "code": "0" * 16})  # the same settings trained by other code
    with pytest.raises(ValueError, match=r"code: '\w+' \(saved\) vs '0{16}' \(now\)"):
        training.train(changed, run_dir=tmp_path / "r")


def test_a_nan_loss_stops_with_the_epoch_and_term(tiny_data, tmp_path, monkeypatch):
    from aebench.models.gmm_dae import GMMDAE

    original = GMMDAE.loss

    def broken(self, x):
        terms = original(self, x)
        terms["cv"] = terms["cv"] * float("nan")
        return terms

    monkeypatch.setattr(GMMDAE, "loss", broken)
    with pytest.raises(training.TrainingDivergedError, match=r"epoch 1, step 1: loss term 'cv' is nan"):
        _train("gmm_dae", tmp_path / "nan", epochs=1, batch_size=20)


def test_a_crash_between_the_epoch_files_still_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    full = _train("gmm_dae", tmp_path / "full", seed=2, epochs=3, batch_size=20)
    real_save = training.save_checkpoint

    def crash_at_epoch_3(path, model, **meta):
        if meta["epoch"] == 3:
            raise KeyboardInterrupt  # after the optimizer state and history of epoch 3 were written
        return real_save(path, model, **meta)

    monkeypatch.setattr(training, "save_checkpoint", crash_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        _train("gmm_dae", tmp_path / "crash", seed=2, epochs=3, batch_size=20)
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    resumed = _train("gmm_dae", tmp_path / "crash", seed=2, epochs=3, batch_size=20)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match=r"training\.epochs: 3 \(saved\) vs 2 \(now\)"):
        _train("gmm_dae", tmp_path / "crash", seed=2, epochs=2, batch_size=20)
