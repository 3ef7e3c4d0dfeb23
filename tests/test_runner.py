"""The suite runner end to end on the embedded data: rows, measurement-level resume, failures, stale work, shards."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

import aebench.runner.measure as measure
import aebench.runner.run as run_module
from aebench.report import render_report
from aebench.results import read_rows
from aebench.runner import RunError, parse_shard, plan_suite, run_suite
from aebench.sampling import target_indices, trial_indices
from aebench.suite import load_suite

SUITE = {
    "name": "tiny",
    "version": 1,
    "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"},
               {"name": "robust_gmm_dae", "label": "robust_a025", "overrides": {"coupling": 0.25}}],
    "training": {"epochs": 1, "batch_size": 500},
    "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [0.5, 2], "options": {"steps": 3, "restarts": 1}},
                {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3, "restarts": 1}}],
    "n_images": 3,
    "n_trials": 2,
    "seeds": [0],
    "device": "cpu",
    "examples": 2,
}
ATTACKS = 2 * 2 + 2  # latent pgd + noise at two budgets, max damage pgd + noise at one
VOLATILE = ["wall_time", "run_id"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One training cache for the module: models of equal configuration are trained once (the cache at work)."""
    return tmp_path_factory.mktemp("cache")


def _suite(tmp_path: Path, name: str, cache: Path | None = None, **changes):
    raw = {**SUITE, "output": str(tmp_path / name), "cache_dir": str(cache or tmp_path / "cache"), **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path)


def _silent():
    from rich.console import Console

    from aebench.progress import ProgressLog

    return ProgressLog(Console(quiet=True), enabled=False)


def _sorted(rows: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "measurement", "attack", "optimizer", "budget", "trial", "metric"]
    return rows.drop(columns=VOLATILE).sort_values(keys).reset_index(drop=True)


def test_rows_are_tidy_and_cover_every_measurement_trial_and_metric(tmp_path, shared_cache):
    suite = _suite(tmp_path, "run", shared_cache)
    summary = run_suite(suite, progress=_silent())
    assert len(summary.finished) == 2 * (1 + ATTACKS) and not summary.failed
    rows = read_rows(suite.output)
    attacked = rows[rows.attack != "none"]
    assert set(attacked.optimizer) == {"pgd", "noise"}
    latent = attacked[(attacked.attack == "latent") & (attacked.metric == "msssim_paper_target_adv_recon")]
    assert len(latent) == 2 * 2 * 2 * 2  # models × optimizers × budgets × trials
    assert rows.value.notna().all() and set(rows.run_id) == {summary.run_id}
    settings = rows.settings.iloc[0]
    assert settings["training"]["epochs"] == 1 and settings["training"]["batch_size"] == 500
    assert settings["model_args"]["latent_dim"] == 10
    written = {p.name for p in render_report(suite.output).written}
    assert {"table1_fashion_mnist_mini_pgd.tex", "figure3_fashion_mnist_mini_pgd_latent.png", "results.csv"} <= written


def test_run_json_records_the_run_and_every_model(tmp_path, shared_cache):
    suite = _suite(tmp_path, "prov", shared_cache)
    summary = run_suite(suite, progress=_silent())
    record = json.loads((Path(suite.output) / "run.json").read_text())
    assert record["run_id"] == summary.run_id and record["ended"] >= record["started"]
    assert set(record["git"]) == {"commit", "dirty"} and "torch" in record["versions"] and record["device"]
    assert set(record["models"]) == {"fashion_mnist_mini__gmm_dae__s0", "fashion_mnist_mini__robust_a025__s0"}
    for model in record["models"].values():
        assert Path(model["checkpoint"]).is_file() and len(model["sha256"]) == 64
    assert (Path(suite.output) / "runs" / f"{summary.run_id}.json").is_file()


def test_each_training_session_records_its_epochs_and_wall_time(tmp_path):
    suite = _suite(tmp_path, "timed", models=[{"name": "gmm_dae"}], noise_baseline=False,
                   training={"epochs": 2, "batch_size": 500})
    run_suite(suite, progress=_silent())
    (log,) = Path(suite.cache_dir).glob("gmm_dae-*/training_time.jsonl")
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["epochs"] == [1, 2] and entry["seconds"] > 0 and entry["device"] == "cpu" and entry["threads"] >= 1


def test_an_interrupt_costs_one_measurement_and_the_rerun_gives_the_same_rows(tmp_path, shared_cache, monkeypatch):
    whole = _suite(tmp_path, "whole", shared_cache)
    run_suite(whole, progress=_silent())

    interrupted = _suite(tmp_path, "interrupted", shared_cache)
    real_attack = measure.MEASURE["attack"]
    calls = []

    def attack_then_interrupt(ctx, m):
        calls.append(m.name)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C (or kill) during the fourth attack of the first cell
        return real_attack(ctx, m)

    monkeypatch.setitem(measure.MEASURE, "attack", attack_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_suite(interrupted, progress=_silent())
    monkeypatch.setitem(measure.MEASURE, "attack", real_attack)
    assert len(read_rows(interrupted.output).measurement.unique()) == 1 + 3  # reconstruction and three attacks kept

    resumed = run_suite(interrupted, progress=_silent())
    assert len(resumed.skipped) == 4 and len(resumed.finished) == 2 * (1 + ATTACKS) - 4
    a, b = _sorted(read_rows(whole.output)), _sorted(read_rows(interrupted.output))
    pd.testing.assert_frame_equal(a, b)
    render_report(whole.output, tmp_path / "r1")
    render_report(interrupted.output, tmp_path / "r2")
    assert (tmp_path / "r1/table1_fashion_mnist_mini_pgd.tex").read_text() == \
        (tmp_path / "r2/table1_fashion_mnist_mini_pgd.tex").read_text()


def test_kill_9_between_measurements_loses_nothing_finished(tmp_path, shared_cache):
    """A real SIGKILL of `aebench run` in the middle of a cell; the rerun finishes with the rows of a clean run."""
    import signal
    import subprocess
    import sys
    import time

    suite = _suite(tmp_path, "killed", shared_cache)
    reference = _suite(tmp_path, "reference", shared_cache)
    run_suite(reference, progress=_silent())
    command = [sys.executable, "-m", "aebench.cli", "run", suite.path, "--no-report"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    cells = Path(suite.output) / "cells"
    while time.time() < deadline and len(list(cells.glob("*/*.jsonl"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(cells.glob("*/*.jsonl")))
    assert 3 <= done < 2 * (1 + ATTACKS)
    resumed = run_suite(suite, progress=_silent())
    assert len(resumed.skipped) >= 3 and not resumed.failed
    pd.testing.assert_frame_equal(_sorted(read_rows(reference.output)), _sorted(read_rows(suite.output)))


def test_a_failing_measurement_costs_only_itself(tmp_path, shared_cache, monkeypatch):
    import aebench.fidelity as fidelity

    def broken(*args, **kwargs):
        raise RuntimeError("simulated classifier failure")

    monkeypatch.setattr(fidelity, "fd_classifier", broken)
    suite = _suite(tmp_path, "fail", shared_cache, fidelity={"n_samples": 16}, downstream={"budget": 0.5, "epochs": 1},
                   tables=["table1", "table3"])
    summary = run_suite(suite, progress=_silent())
    assert sorted(summary.failed) == ["fashion_mnist_mini__gmm_dae__s0/fidelity-fd_classifier",
                                      "fashion_mnist_mini__robust_a025__s0/fidelity-fd_classifier"]
    record = json.loads((Path(suite.output) / "cells/fashion_mnist_mini__gmm_dae__s0/fidelity-fd_classifier"
                         ".error.json").read_text())
    assert "simulated classifier failure" in record["error"] and "Traceback" in record["traceback"]
    rows = read_rows(suite.output)
    assert {"reconstruction", "downstream"} <= set(rows.measurement) and "fidelity-fd_classifier" not in set(
        rows.measurement)
    assert len(rows.measurement.unique()) == 1 + ATTACKS + 1
    report = render_report(suite.output)
    assert len(report.failed) == 2
    table = (Path(suite.output) / "report/table1_fashion_mnist_mini_pgd.md").read_text()
    assert "| gmm_dae |" in table and table.count("| failed |") == 2


def test_a_model_that_cannot_be_trained_fails_its_measurements_and_the_other_cell_goes_on(tmp_path, monkeypatch):
    real = run_module.obtain_model

    def flaky(cell, *args, **kwargs):
        if cell.label == "gmm_dae":
            raise RuntimeError("simulated out-of-memory")
        return real(cell, *args, **kwargs)

    monkeypatch.setattr(run_module, "obtain_model", flaky)
    suite = _suite(tmp_path, "nomodel")
    summary = run_suite(suite, progress=_silent())
    assert len(summary.failed) == 1 + ATTACKS
    assert all(k.startswith("fashion_mnist_mini__gmm_dae") for k in summary.failed)
    assert all("model: RuntimeError: simulated out-of-memory" == v for v in summary.failed.values())
    assert len(summary.finished) == 1 + ATTACKS


def test_a_nan_result_is_a_failed_measurement_never_a_number(tmp_path, shared_cache, monkeypatch):
    real = measure.MEASURE["attack"]

    def nan_on_max_damage(ctx, m):
        outcome = real(ctx, m)
        if m.settings["attack"] == "max_damage":
            outcome.values[0].values[0] = float("nan")
        return outcome

    monkeypatch.setitem(measure.MEASURE, "attack", nan_on_max_damage)
    suite = _suite(tmp_path, "nan", shared_cache)
    summary = run_suite(suite, progress=_silent())
    assert len(summary.failed) == 2 * 2 and all("NonFiniteResultError" in v for v in summary.failed.values())
    render_report(suite.output)
    table = (Path(suite.output) / "report/table1_fashion_mnist_mini_pgd.md").read_text()
    cells = "\n".join(line for line in table.splitlines() if line.startswith("|"))  # not the suite's path
    assert "nan" not in cells.lower() and "failed" in cells


def test_a_corrupt_rows_file_is_reported_by_name_and_recomputed(tmp_path, shared_cache):
    suite = _suite(tmp_path, "corrupt", shared_cache)
    run_suite(suite, progress=_silent())
    path = Path(suite.output) / "cells/fashion_mnist_mini__gmm_dae__s0/attack-latent-pgd-2.jsonl"
    before = path.read_text()
    path.write_text(before.splitlines()[0] + "\n{\"suite\": \"tin\n")
    report = render_report(suite.output)
    assert len(report.problems) == 1 and str(path) in report.problems[0] and "line 2" in report.problems[0]
    assert "fashion_mnist_mini/gmm_dae/attack-latent-pgd-2" in report.missing
    again = run_suite(suite, progress=_silent())
    assert again.finished == ["fashion_mnist_mini__gmm_dae__s0/attack-latent-pgd-2"]
    after = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["value"] for r in after] == [json.loads(line)["value"] for line in before.splitlines()]


def test_changed_code_retrains_and_re_evaluates_unless_stale_work_is_kept_explicitly(tmp_path, monkeypatch):
    import aebench.config as config
    import aebench.runner.plan as plan

    suite = _suite(tmp_path, "stale", models=[{"name": "gmm_dae"}])
    first = run_suite(suite, progress=_silent())
    cache = sorted(Path(suite.cache_dir).iterdir())
    # A change to the training code (the fingerprint) and to the attacks: nothing old may be reused silently.
    monkeypatch.setattr(config, "training_fingerprint", lambda cls: "feedfacefeedface")
    monkeypatch.setattr(plan, "measurement_fingerprint", lambda kind: f"changed-{kind}")
    kept = run_suite(suite, progress=_silent(), reuse_stale=True)
    assert len(kept.reused_stale) == 1 + ATTACKS and not kept.finished
    assert sorted(Path(suite.cache_dir).iterdir()) == cache  # nothing retrained
    rows = read_rows(suite.output)
    assert rows.reused_stale.all() and set(rows.run_id) == {first.run_id}
    fresh = run_suite(suite, progress=_silent())
    assert len(fresh.finished) == 1 + ATTACKS and not fresh.skipped
    assert len(sorted(Path(suite.cache_dir).iterdir())) == 2  # trained again, beside the old model
    rows = read_rows(suite.output)
    assert not rows.reused_stale.any() and set(rows.run_id) == {fresh.run_id}


@pytest.mark.parametrize("problem", ["output_is_a_file", "read_only", "disk_full"])
def test_unwritable_outputs_fail_before_any_compute(tmp_path, monkeypatch, problem):
    import aebench.utils as utils

    suite = _suite(tmp_path, "out")
    out = Path(suite.output)
    if problem == "output_is_a_file":
        out.write_text("not a folder")
        expected = "is a file, not a folder"
    elif problem == "read_only":
        if os.geteuid() == 0:
            monkeypatch.setattr(utils.tempfile, "mkstemp", _raise_permission_error)
        else:
            out.mkdir()
            out.chmod(0o500)
        expected = "is not writable"
    else:
        monkeypatch.setattr(utils, "_free_mb", lambda folder: 3.0)
        expected = "has only 3 MB free"
    monkeypatch.setattr(run_module, "plan_suite", _must_not_run)
    with pytest.raises(RunError, match=expected):
        run_suite(suite, progress=_silent())


def _raise_permission_error(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def _must_not_run(*args, **kwargs):
    raise AssertionError("computed something before checking the outputs")


def test_progress_lines_for_a_batch_job(tmp_path):
    from rich.console import Console

    from aebench.progress import ProgressLog

    now = [0.0]
    console = Console(file=open(tmp_path / "log.txt", "w"), force_terminal=False, width=200)
    log = ProgressLog(console, clock=lambda: now[0])
    with log.task("attack-latent-lbfgs-3", 100, "iterations") as task:
        for step in range(1, 101):
            now[0] += 1.0  # one second per iteration
            task.update(step)
    console.file.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert len(lines) == 3  # at 30, 60 and 90 s: at most 30 s apart, none for the rest
    assert lines[0] == "  attack-latent-lbfgs-3: 30/100 iterations (30%), 30 s elapsed, about 1 min 10 s left"


def test_shards_split_the_cells_without_overlap(tmp_path):
    suite = _suite(tmp_path, "shard", seeds=[0, 1, 2])
    ids = [c.cell_id for c in plan_suite(suite)]
    parts = [[c.cell_id for c in plan_suite(suite)[i::3]] for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(ids) and len(ids) == 6
    assert parse_shard("2/3") == (2, 3)
    with pytest.raises(ValueError, match="i/N"):
        parse_shard("two")
    with pytest.raises(ValueError, match="0 ≤ i < N"):
        parse_shard("3/3")


def test_targets_are_the_next_image_of_another_class():
    from aebench.data import load_dataset

    test_set = load_dataset("fashion_mnist_mini", "test")
    sources = trial_indices(len(test_set), 50, 2, seed=0)
    targets = target_indices(test_set, sources, seed=0)
    labels = test_set.labels
    for s, t in zip(sources.reshape(-1).tolist(), targets.reshape(-1).tolist(), strict=True):
        assert labels[t] != labels[s]
        between = [(s + k) % len(test_set) for k in range(1, (t - s) % len(test_set))]
        assert all(labels[j] == labels[s] for j in between)
    assert not (sources[0] == sources[1]).all()  # each trial draws its own images


def test_the_audit_shows_the_paper_attack_beside_the_worst_case(tmp_path, shared_cache):
    suite = _suite(tmp_path, "audit", shared_cache, models=[{"name": "gmm_dae"}], noise_baseline=False,
                   tables=["audit"], attacks=[
                       {"name": "max_damage", "optimizer": "ensemble", "budgets": [1],
                        "options": {"apgd_restarts": 1}},
                       {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3}},
                       {"name": "max_damage", "optimizer": "lbfgs", "budgets": [1], "options": {"max_iter": 5}},
                       {"name": "max_damage_msssim", "optimizer": "pgd", "budgets": [1], "options": {"steps": 3}}])
    assert not run_suite(suite, progress=_silent()).failed
    rows = read_rows(suite.output)
    ensemble = rows[rows.optimizer == "ensemble"]
    members = {m for m in ensemble.metric if m.startswith("attack_loss_")}
    assert members == {"attack_loss_apgd", "attack_loss_lbfgs"}
    # The worst case is never weaker than any member, and the gap is what separates them.
    by = ensemble.pivot_table(index="trial", columns="metric", values="value")
    assert (by["attack_loss"] <= by["attack_loss_lbfgs"] + 1e-6).all()
    assert ((by["attack_loss_lbfgs"] - by["attack_loss"]) - by["attack_gap_lbfgs"]).abs().max() < 1e-5
    names = {p.name for p in render_report(suite.output).written}
    assert {"audit_max_damage_fashion_mnist_mini.md", "perceptual_max_damage_fashion_mnist_mini_pgd.md"} <= names
    audit = (Path(suite.output) / "report/audit_max_damage_fashion_mnist_mini.md").read_text()
    assert "paper attack" in audit and "worst case" in audit and "Order flags" in audit
    assert "active units" in audit and "recon. MSE" in audit  # the collapse indicator beside the audit
    assert "Attacks that reached the worst case" in audit
    # The audit's worst case folds in every max-damage attack of the suite: never weaker than any of them.
    summary = pd.read_csv(Path(suite.output) / "report/summary.csv")
    loss = summary[(summary.metric == "attack_loss") & (summary.attack == "max_damage")].set_index("optimizer")
    assert loss.loc["worst", "mean"] <= loss.drop(index="worst")["mean"].min() + 1e-9
    paper = summary[(summary.optimizer == "worst") & (summary.metric == "attack_loss_lbfgs")]["mean"].iloc[0]
    assert abs(paper - loss.loc["lbfgs", "mean"]) < 1e-9  # the paper attack column is the lbfgs measurement


def _replace_weights(checkpoint: Path, model) -> None:
    """Save other weights (``model``'s, scaled by 1.01) under the same file and metadata; ``model`` is changed too."""
    import torch

    from aebench.checkpoint import read_metadata, save_checkpoint

    meta = read_metadata(checkpoint)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.01)
    save_checkpoint(checkpoint, model, **{k: v for k, v in meta.items()
                                          if k not in ("format", "model", "model_args", "versions", "git")})


def test_a_checkpoint_replaced_under_the_same_configuration_is_measured_again(tmp_path):
    """Rows record the digest of the weights they measured; other weights in the cache make them be computed again.

    A checkpoint can change while its configuration key does not (retrained with another thread count, restored
    from elsewhere); a rerun must then not keep the old rows beside new ones, which would mix two models in a cell.
    """
    from aebench.checkpoint import load_model, weights_digest

    suite = _suite(tmp_path, "weights", models=[{"name": "gmm_dae"}])
    first = run_suite(suite, progress=_silent())
    rows = read_rows(suite.output)
    (checkpoint,) = Path(suite.cache_dir).glob("*/checkpoint.safetensors")
    model = load_model(checkpoint)
    assert {s["model_weights_digest"] for s in rows.settings} == {weights_digest(model)}
    assert len(run_suite(suite, progress=_silent()).skipped) == len(first.finished)  # same weights: nothing redone

    _replace_weights(checkpoint, model)  # as a retraining under the same configuration would leave it
    again = run_suite(suite, progress=_silent())
    assert len(again.finished) == len(first.finished) and not again.skipped
    new_rows = read_rows(suite.output)
    assert {s["model_weights_digest"] for s in new_rows.settings} == {weights_digest(model)}
    recon = lambda r: float(r[r.metric == "test_recon_mse"].value.iloc[0])  # noqa: E731
    assert recon(new_rows) != recon(rows)


def test_run_only_some_models_keeps_the_whole_suite_in_the_report(tmp_path, shared_cache):
    suite = _suite(tmp_path, "only", shared_cache)
    with pytest.raises(ValueError, match="'nope'.*gmm_dae, robust_a025"):
        run_suite(suite, progress=_silent(), models=["nope"])
    first = run_suite(suite, progress=_silent(), models=["robust_a025"])
    assert first.finished and {name.split("/")[0] for name in first.finished} == {"fashion_mnist_mini__robust_a025__s0"}
    report = render_report(suite.output)
    assert any(m.startswith("fashion_mnist_mini/gmm_dae/") for m in report.missing)  # still planned, not dropped
    assert not any("robust_a025" in m for m in report.missing)
    rest = run_suite(suite, progress=_silent())
    assert {name.split("/")[0] for name in rest.finished} == {"fashion_mnist_mini__gmm_dae__s0"}
    assert len(rest.skipped) == len(first.finished)
    # Each model's checkpoint is in the record of the run that measured it; the leaderboard finds both.
    render_report(suite.output)
    board = json.loads((Path(suite.output) / "report" / "leaderboard.json").read_text())
    digests = {e["model"]: e["checkpoint_sha256"] for e in board["datasets"]["fashion_mnist_mini"]}
    assert set(digests) == {"gmm_dae", "robust_a025"} and all(len(d) == 64 for d in digests.values())


def test_a_rerun_with_nothing_to_do_keeps_the_record_of_the_run_that_did_the_work(tmp_path, shared_cache):
    suite = _suite(tmp_path, "records", shared_cache)
    first = run_suite(suite, progress=_silent())
    output = Path(suite.output)
    before = {p.name: p.read_text() for p in [output / "run.json", *sorted((output / "runs").glob("*.json"))]}
    again = run_suite(suite, progress=_silent())
    assert not again.finished and again.skipped
    after = {p.name: p.read_text() for p in [output / "run.json", *sorted((output / "runs").glob("*.json"))]}
    assert after == before and json.loads(after["run.json"])["run_id"] == first.run_id


def test_rows_without_a_weights_digest_are_recomputed_when_the_model_is_trained_again(tmp_path):
    """Rows of older versions record no weights digest; once the model is retrained they cannot be vouched for."""
    import shutil

    suite = _suite(tmp_path, "no-digest", models=[{"name": "gmm_dae"}])
    run_suite(suite, progress=_silent())
    cell = Path(suite.output) / "cells" / "fashion_mnist_mini__gmm_dae__s0"
    recon = cell / "reconstruction.jsonl"
    legacy = [json.loads(line) for line in recon.read_text().splitlines()]
    for row in legacy:
        del row["settings"]["model_weights_digest"]
    recon.write_text("".join(json.dumps(row) + "\n" for row in legacy))
    kept = run_suite(suite, progress=_silent())  # the cached model is the one that was measured: nothing to do
    assert not kept.finished
    for folder in Path(suite.cache_dir).glob("gmm_dae-*"):
        shutil.rmtree(folder)  # the model must be trained again ...
    next(cell.glob("attack-*-1.jsonl")).unlink()  # ... for a measurement still to do
    again = run_suite(suite, progress=_silent())
    assert "fashion_mnist_mini__gmm_dae__s0/reconstruction" in again.finished
    assert all("model_weights_digest" in json.loads(line)["settings"] for line in recon.read_text().splitlines())


def test_reuse_stale_keeps_old_codes_numbers_only_for_the_same_weights(tmp_path, monkeypatch):
    """``--reuse-stale`` keeps rows of older code; rows of other weights than the model's are computed again."""
    import aebench.runner.plan as plan
    from aebench.checkpoint import load_model, weights_digest

    suite = _suite(tmp_path, "stale-weights", models=[{"name": "gmm_dae"}])
    first = run_suite(suite, progress=_silent())
    monkeypatch.setattr(plan, "measurement_fingerprint", lambda kind: f"changed-{kind}")
    kept = run_suite(suite, progress=_silent(), reuse_stale=True)
    assert len(kept.reused_stale) == len(first.finished) and not kept.finished
    (checkpoint,) = Path(suite.cache_dir).glob("*/checkpoint.safetensors")
    model = load_model(checkpoint)
    _replace_weights(checkpoint, model)
    again = run_suite(suite, progress=_silent(), reuse_stale=True)
    assert len(again.finished) == len(first.finished) and not again.reused_stale
    rows = read_rows(suite.output)
    assert {s["model_weights_digest"] for s in rows.settings} == {weights_digest(model)}
    assert not rows.reused_stale.any()


def test_the_weights_digest_sees_values_not_file_headers():
    import torch

    from aebench.checkpoint import weights_digest

    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.bias[0] += 1e-7
    assert weights_digest(a) != weights_digest(b)


def test_only_changes_to_code_and_recipes_make_a_commit_dirty(tmp_path):
    """Rows a run writes into a tracked results folder must not mark the next run as made from changed code."""
    from aebench.provenance import git_hash_at

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    for name in ("aebench/models.py", "baselines/vae.yaml", "results/table/rows.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("first\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    clean = git_hash_at(tmp_path)
    assert clean is not None and len(clean) == 40
    (tmp_path / "results/table/rows.jsonl").write_text("second\n")
    assert git_hash_at(tmp_path) == clean
    (tmp_path / "baselines/vae.yaml").write_text("second\n")
    assert git_hash_at(tmp_path) == f"{clean}-dirty"
