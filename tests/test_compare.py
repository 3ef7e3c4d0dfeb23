"""Across runs: the leaderboard of a run, and one table of several runs that refuses mismatched protocols."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from aebench.cli import app
from aebench.report import render_report
from aebench.results import read_rows
from aebench.runner import run_suite
from aebench.suite import load_suite

BASE = {"version": 1, "datasets": ["fashion_mnist_mini"], "models": [{"name": "gmm_dae"}],
        "training": {"epochs": 1, "batch_size": 500}, "noise_baseline": False, "n_images": 3, "n_trials": 2,
        "device": "cpu", "attacks": [{"name": "max_damage", "optimizer": "pgd", "budgets": [1],
                                      "options": {"steps": 2, "restarts": 1}}]}


def _run(tmp_path: Path, name: str, **changes) -> Path:
    raw = {**BASE, "name": name, "output": str(tmp_path / name), "cache_dir": str(tmp_path / "cache"), **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite = load_suite(path)
    run_suite(suite)
    render_report(suite.output)
    return Path(suite.output)


def test_the_leaderboard_holds_numbers_sources_and_the_protocol(tmp_path):
    run = _run(tmp_path, "first")
    board = json.loads((run / "report" / "leaderboard.json").read_text())
    (entry,) = board["datasets"]["fashion_mnist_mini"]
    assert entry["model"] == "gmm_dae" and len(entry["checkpoint_sha256"]) == 64
    assert isinstance(entry["numbers"]["msssim_paper_recon_adv_recon/max_damage/pgd/1"], float)
    assert board["protocol"]["n_images"] == 3 and board["protocol"]["attacks"][0]["optimizer"] == "pgd"


def test_compare_renders_two_runs_side_by_side_and_refuses_another_protocol(tmp_path):
    first = _run(tmp_path, "first")
    second = _run(tmp_path, "second", models=[{"name": "robust_gmm_dae"}])
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(first), str(second)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| first/gmm_dae |" in result.output and "| second/robust_gmm_dae |" in result.output
    other = _run(tmp_path, "other", n_trials=3)
    refused = runner.invoke(app, ["compare", str(first), str(other)], catch_exceptions=False)
    assert refused.exit_code == 2 and "n_trials: 2 (first) vs 3 (other)" in refused.output


def test_rows_of_other_code_are_found_refused_by_compare_and_flagged_by_the_report(tmp_path, monkeypatch):
    import aebench.report.current as current

    first = _run(tmp_path, "first")
    second = _run(tmp_path, "second", models=[{"name": "robust_gmm_dae"}])
    text = (first / "report" / "table1_fashion_mnist_mini_pgd.md").read_text()
    assert "3 test images × 2 trials, seed(s) 0; optimizer `pgd` with restarts=1, steps=2; training epochs: 1" in text
    assert "Warning" not in text
    assert current.other_code(read_rows(second)) == []  # the runner's keys, recomputed from the rows alone
    # The attack code changes after the second run: its rows are another code's numbers.
    real = current.measurement_fingerprint
    monkeypatch.setattr(current, "measurement_fingerprint", lambda kind: "edited" if kind == "attack" else real(kind))
    flagged = current.other_code(read_rows(second))
    assert flagged == ["fashion_mnist_mini/robust_gmm_dae/attack-max_damage-pgd-1"]
    runner = CliRunner()
    refused = runner.invoke(app, ["compare", str(first), str(second)], catch_exceptions=False)
    assert refused.exit_code == 2 and "computed by other code" in refused.output
    allowed = runner.invoke(app, ["compare", str(first), str(second), "--allow-other-code"], catch_exceptions=False)
    assert allowed.exit_code == 0 and "| second/robust_gmm_dae |" in allowed.output
    result = render_report(second)
    assert result.other_code == flagged
    assert "**Warning:** 1 measurement(s) here were computed by other code" in \
        (second / "report" / "table1_fashion_mnist_mini_pgd.md").read_text()


def test_a_rerendered_report_drops_its_own_leftovers_and_keeps_other_files(tmp_path):
    run = _run(tmp_path, "first")
    report = run / "report"
    written = sorted(p.name for p in report.iterdir())
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    (report / "figure3_fashion_mnist_mini_pgd.png").write_bytes(b"a figure under an older name")
    (report / "my_notes.txt").write_text("mine")
    result = render_report(run)
    assert [p.name for p in result.removed] == ["figure3_fashion_mnist_mini_pgd.png"]
    assert sorted(p.name for p in report.iterdir()) == sorted([*written, "my_notes.txt"])
    # The same rows give the same files, byte for byte (PDFs carry no creation date).
    assert {name: (report / name).read_bytes() for name in written} == before
