"""The suite runner end to end on the embedded data: rows, resume after an interruption, failures, shards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import aebench.runner as runner
from aebench.report import render_report
from aebench.results import read_rows
from aebench.suite import load_suite

SUITE = {
    "name": "tiny",
    "version": 1,
    "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"}, {"name": "robust_gmm_dae", "label": "robust_a025", "overrides": {"coupling": 0.25}}],
    "training": {"epochs": 1, "batch_size": 200},
    "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [0.5, 2], "options": {"steps": 5, "restarts": 1}},
                {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 5, "restarts": 1}}],
    "n_images": 3,
    "n_trials": 2,
    "seeds": [0],
    "device": "cpu",
    "examples": 2,
}


def _suite(tmp_path: Path, name: str, **changes):
    raw = {**SUITE, "output": str(tmp_path / name), "cache_dir": str(tmp_path / "cache"), **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path)


def test_rows_are_tidy_and_cover_every_attack_budget_trial_and_metric(tmp_path):
    suite = _suite(tmp_path, "run")
    summary = runner.run_suite(suite, progress=False)
    assert sorted(summary.finished) == ["fashion_mnist_mini__gmm_dae__s0", "fashion_mnist_mini__robust_a025__s0"]
    rows = read_rows(suite.output)
    attacked = rows[rows.attack != "none"]
    assert set(attacked.optimizer) == {"pgd", "noise"}
    latent = attacked[(attacked.attack == "latent") & (attacked.metric == "msssim_paper_target_adv_recon")]
    assert len(latent) == 2 * 2 * 2 * 2  # models × optimizers × budgets × trials
    assert set(rows.columns) >= {"suite", "version", "wall_time", "versions", "git", "config_hash", "higher_is_better"}
    assert rows.value.notna().all()
    written = render_report(suite.output)
    assert any(p.name == "table1_fashion_mnist_mini_pgd.tex" for p in written)
    assert any(p.name == "figure3_fashion_mnist_mini_pgd.png" for p in written)


def test_an_interrupted_suite_resumes_without_recomputing_and_gives_the_same_table(tmp_path, monkeypatch):
    whole = _suite(tmp_path, "whole")
    runner.run_suite(whole, progress=False)

    interrupted = _suite(tmp_path, "interrupted")
    real_evaluate = runner.evaluate_cell
    calls = []

    def evaluate_then_interrupt(cell, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # Ctrl-C during the second cell
        calls.append(cell.cell_id)
        return real_evaluate(cell, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_cell", evaluate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        runner.run_suite(interrupted, progress=False)
    monkeypatch.setattr(runner, "evaluate_cell", real_evaluate)

    resumed = runner.run_suite(interrupted, progress=False)
    assert resumed.skipped == [calls[0]] and len(resumed.finished) == 1
    a = read_rows(whole.output).drop(columns=["wall_time"]).sort_values(["model", "attack", "optimizer", "budget",
                                                                          "trial", "metric"]).reset_index(drop=True)
    b = read_rows(interrupted.output).drop(columns=["wall_time"]).sort_values(["model", "attack", "optimizer",
                                                                                "budget", "trial", "metric"]).reset_index(drop=True)
    assert a.drop(columns=["suite"]).equals(b.drop(columns=["suite"]))
    render_report(whole.output, tmp_path / "r1")
    render_report(interrupted.output, tmp_path / "r2")
    assert (tmp_path / "r1/table1_fashion_mnist_mini_pgd.tex").read_text() == \
        (tmp_path / "r2/table1_fashion_mnist_mini_pgd.tex").read_text()


def test_a_failing_cell_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    suite = _suite(tmp_path, "fail")
    real_obtain = runner.obtain_model

    def flaky(cell, *args, **kwargs):
        if cell.model.label == "gmm_dae":
            raise RuntimeError("simulated out-of-memory")
        return real_obtain(cell, *args, **kwargs)

    monkeypatch.setattr(runner, "obtain_model", flaky)
    summary = runner.run_suite(suite, progress=False)
    assert list(summary.failed) == ["fashion_mnist_mini__gmm_dae__s0"]
    assert "simulated out-of-memory" in (Path(suite.output) / "cells/fashion_mnist_mini__gmm_dae__s0.error.json").read_text()
    assert summary.finished == ["fashion_mnist_mini__robust_a025__s0"]


def test_fidelity_and_downstream_rows_are_written(tmp_path, monkeypatch):
    import aebench.fidelity.feature_classifier as fc

    seen = {}

    def fake_fd(model, dataset, n_samples, **kwargs):  # the real one trains a CNN: covered in test_fidelity.py
        seen[dataset] = n_samples
        return 12.5

    monkeypatch.setattr(fc, "fd_classifier", fake_fd)
    suite = _suite(tmp_path, "extras", fidelity={"n_samples": 64}, downstream={"budget": 0.5, "epochs": 2},
                   tables=["table1", "table2", "table3"])
    runner.run_suite(suite, progress=False)
    rows = read_rows(suite.output)
    assert seen == {"fashion_mnist_mini": 64}
    assert set(rows[rows.metric == "fd_classifier"].value) == {12.5}
    clean = rows[rows.metric == "downstream_clean_accuracy"]
    attacked = rows[rows.metric == "downstream_attacked_accuracy"]
    assert len(clean) == 2 and len(attacked) == 2 * 2  # models, models × trials
    assert ((clean.value > 10) & (clean.value <= 100)).all()  # percent, better than chance after 1 epoch
    assert set(attacked.budget) == {0.5} and set(attacked.optimizer) == {"pgd"}
    names = {p.name for p in render_report(suite.output)}
    assert {"table2_fashion_mnist_mini_pgd.md", "table3_pgd.md", "tradeoff_fashion_mnist_mini_pgd.png"} <= names


def test_shards_split_the_cells_without_overlap(tmp_path):
    suite = _suite(tmp_path, "shard", seeds=[0, 1, 2])
    ids = [c.cell_id for c in suite.cells()]
    parts = [[c.cell_id for c in suite.cells()[i::3]] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids)
    assert runner.parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError, match="i/N"):
        runner.parse_shard("two")
    with pytest.raises(ValueError, match="0 ≤ i < N"):
        runner.parse_shard("3/3")


def test_targets_are_the_next_image_of_another_class():
    from aebench.data import load_dataset

    test_set = load_dataset("fashion_mnist_mini", "test")
    sources = runner.trial_indices(len(test_set), 50, 2, seed=0)
    targets = runner.target_indices(test_set, sources, seed=0)
    labels = test_set.labels
    for s, t in zip(sources.reshape(-1).tolist(), targets.reshape(-1).tolist()):
        assert labels[t] != labels[s]
        between = [(s + k) % len(test_set) for k in range(1, (t - s) % len(test_set))]
        assert all(labels[j] == labels[s] for j in between)
    assert not (sources[0] == sources[1]).all()  # each trial draws its own images


def test_the_suites_training_block_reaches_the_trained_checkpoint(tmp_path):
    from aebench.checkpoint import read_metadata

    suite = _suite(tmp_path, "epochs", training={"epochs": 2, "batch_size": 300, "lr": 1e-3},
                   models=[{"name": "gmm_dae"}])
    cell = suite.cells()[0]
    model = runner.obtain_model(cell, runner.pick_device("cpu"), runner.Console(quiet=True))
    del model
    (checkpoint,) = Path(suite.cache_dir).glob("*/checkpoint.safetensors")
    meta = read_metadata(checkpoint)
    assert meta["epoch"] == 2 and meta["recipe"]["training"]["epochs"] == 2
    assert meta["recipe"]["training"]["batch_size"] == 300 and meta["recipe"]["training"]["lr"] == 1e-3
