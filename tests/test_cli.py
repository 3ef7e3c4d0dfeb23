"""The command line as a user meets it: clear errors instead of tracebacks, --explain, exit codes."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from aebench.cli import app
from aebench.models import list_models
from tests.helpers import write_idx

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def test_an_unknown_device_is_a_clear_error():
    result = _invoke("train", "gmm_dae", "--dataset", "fashion_mnist_mini", "--device", "gpu", "--epochs", "1")
    assert result.exit_code == 2
    assert "--device 'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps" in result.output


def test_explain_shows_every_setting_and_where_it_came_from(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "explain", "version": 1, "datasets": ["fashion_mnist_mini"],
        "models": [{"name": "robust_gmm_dae", "overrides": {"coupling": 0.25}}], "training": {"epochs": 3},
        "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1]}], "n_images": 4,
        "output": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}))
    result = _invoke("validate", str(suite), "--explain", "--lr", "0.001")
    assert result.exit_code == 0, result.output
    lines = {" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()}
    assert "training.epochs 3 suite" in lines
    assert "training.lr 0.001 command line" in lines
    assert "training.batch_size 100 recipe" in lines
    assert "model_args.coupling 0.25 suite" in lines
    assert "model_args.lambda_rec 500.0 recipe" in lines
    assert "model_args.image_shape [1, 32, 32] dataset" in lines
    assert "model_args.weight_seed 0 default" in lines
    assert "n_images 4 suite" in lines and "n_trials 10 default" in lines


def test_a_failing_fidelity_gate_costs_only_the_fidelity_measurements_of_a_nine_model_suite(tmp_path):
    """Fashion-MNIST in the MNIST IDX format is a real MNIST-format data set that cannot reach MNIST's 98% gate."""
    import numpy as np

    from aebench.data.loaders import mini_path

    root = tmp_path / "data"
    with np.load(mini_path()) as npz:  # 28×28 images, as the official IDX files hold them
        for split, n in (("train", 1200), ("test", 300)):
            write_idx(root / "mnist", split, npz[f"{split}_images"][:n], npz[f"{split}_labels"][:n], gz=True)
    models = [m for m in list_models() if m not in ("external", "pythae_mlp")]
    assert len(models) == 9  # the models of the paper's Table 1
    suite = tmp_path / "nine.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "nine", "version": 1, "datasets": ["mnist"], "data_root": str(root), "models": models,
        "training": {"epochs": 1, "batch_size": 100},
        "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1], "options": {"steps": 2, "restarts": 1}},
                    {"name": "max_damage", "optimizer": "pgd", "budgets": [1], "options": {"steps": 2, "restarts": 1}}],
        "noise_baseline": False, "fidelity": {"n_samples": 50}, "downstream": {"budget": 1, "epochs": 1},
        "n_images": 4, "n_trials": 2, "device": "cpu", "tables": ["table1", "table3"],
        "output": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}))
    result = _invoke("run", str(suite), "--threads", "1")
    assert result.exit_code == 1
    assert result.output.count("failed mnist__") == 9 and "fidelity-fd_classifier: ClassifierAccuracyError" in \
        result.output
    from aebench.results import read_rows

    rows = read_rows(tmp_path / "out")
    for model in models:
        mine = set(rows[rows.model == model].measurement)
        assert mine == {"reconstruction", "attack-latent-pgd-1", "attack-max_damage-pgd-1", "downstream"}, model
    table = (tmp_path / "out/report/table1_mnist_pgd.md").read_text()
    assert table.count("| failed |") == 9
    error = (tmp_path / "out/cells/mnist__vae__s0/fidelity-fd_classifier.error.json").read_text()
    assert "test accuracy" in error and "< the required 0.98" in error


@pytest.mark.parametrize("args, expected", [
    (("run", "no_such_suite.yaml"), "does not exist"),
    (("report", "no_such_folder"), "has no cells/ folder"),
    (("run", "suites/quickstart.yaml", "--shard", "two"), "--shard must look like i/N"),
    (("launch", "suites/quickstart.yaml", "--cluster", "pbs", "--dry-run"), "--cluster must be slurm or local"),
])
def test_bad_arguments_are_clear_errors(args, expected):
    result = _invoke(*args)
    assert result.exit_code == 2 and expected in result.output


def test_run_with_an_unknown_model_label_names_it_and_computes_nothing(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "only", "version": 1, "datasets": ["fashion_mnist_mini"], "models": [{"name": "gmm_dae"}],
        "training": {"epochs": 1}, "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1]}],
        "n_images": 2, "n_trials": 1, "output": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}))
    result = _invoke("run", str(suite), "--model", "gmm", "--threads", "1")
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "no model labelled 'gmm'" in text and "its models are gmm_dae" in text
    assert not (tmp_path / "cache").exists()
