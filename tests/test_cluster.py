"""Past one process: cost-balanced shards, two runs on one folder, a job array through submitit's local executor."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from aebench.results import read_rows
from aebench.runner import parse_shard, plan_suite, run_suite
from aebench.runner.cost import assign_shards, cell_cost, measurement_seconds, training_seconds
from aebench.suite import load_suite

SUITE = {
    "name": "cluster", "version": 1, "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"}, {"name": "vae"}, {"name": "robust_gmm_dae", "label": "robust"}],
    "training": {"epochs": 1, "batch_size": 500},
    "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1, 2], "options": {"steps": 3, "restarts": 1}}],
    "noise_baseline": False, "n_images": 3, "n_trials": 2, "device": "cpu", "examples": 1,
}
VOLATILE = ["wall_time", "run_id"]


def _suite(tmp_path: Path, name: str, **changes):
    raw = {**SUITE, "output": str(tmp_path / name), "cache_dir": str(tmp_path / f"{name}-cache"), **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_suite(path)


def _rows(suite) -> pd.DataFrame:
    keys = ["model", "measurement", "attack", "optimizer", "budget", "trial", "metric"]
    return read_rows(suite.output).drop(columns=VOLATILE).sort_values(keys).reset_index(drop=True)


def test_longest_processing_time_first_is_within_four_thirds_of_the_best_split(tmp_path):
    suite = _suite(tmp_path, "lpt", seeds=[0, 1], training={"epochs": 3, "batch_size": 500},
                   models=[{"name": "gmm_dae"}, {"name": "vae"}, {"name": "robust_gmm_dae", "label": "robust"},
                           {"name": "lipschitz_vae"}])
    cells = plan_suite(suite)
    costs = [cell_cost(c) for c in cells]
    assert costs[cells.index(next(c for c in cells if c.label == "lipschitz_vae"))] == max(costs)
    for count in (2, 3):
        plan = assign_shards(cells, count)
        assert sorted(c.cell_id for s in plan.cells for c in s) == sorted(c.cell_id for c in cells)
        best = min(max(sum(costs[i] for i in range(len(cells)) if split[i] == s) for s in range(count))
                   for split in itertools.product(range(count), repeat=len(cells)))
        assert max(plan.seconds) <= 4 / 3 * best + 1e-9
        assert assign_shards(cells, count) == plan  # every array task computes the same assignment


def test_an_attack_costs_the_same_on_every_model_and_grows_with_the_budget_only_for_convergent_optimizers(tmp_path):
    # A model's training-step cost (the Lipschitz VAE's Bjorck iterations) is training-time work: the estimate of an
    # attack on it equals the attack on a VAE. L-BFGS-B runs to convergence: budget ** 0.8 (3 ** 0.8 = 2.408);
    # PGD makes a fixed number of steps.
    attacks = [{"name": "latent", "optimizer": "lbfgs", "budgets": [1, 3]},
               {"name": "latent", "optimizer": "pgd", "budgets": [1, 3]}]
    suite = _suite(tmp_path, "costs", models=[{"name": "vae"}, {"name": "lipschitz_vae"}], attacks=attacks,
                   noise_baseline=False, n_images=10, n_trials=2)
    vae, lipschitz = plan_suite(suite)
    seconds = {c.label: {m.name: measurement_seconds(m) for m in c.measurements} for c in (vae, lipschitz)}
    assert seconds["vae"] == seconds["lipschitz_vae"]
    attack = seconds["vae"]
    assert attack["attack-latent-lbfgs-3"] / attack["attack-latent-lbfgs-1"] == pytest.approx(2.408, abs=1e-3)
    assert attack["attack-latent-pgd-3"] == attack["attack-latent-pgd-1"]
    assert attack["attack-latent-lbfgs-1"] == pytest.approx(20 * 0.014)  # 10 images x 2 trials at 0.014 s a pair
    assert training_seconds(lipschitz) / training_seconds(vae) == pytest.approx(10.81)


def test_auto_shard_reads_the_array_index():
    assert parse_shard("auto/4", {"SLURM_ARRAY_TASK_ID": "3"}) == (3, 4)
    with pytest.raises(ValueError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("auto/4", {})


def test_two_concurrent_runs_on_one_folder_give_the_rows_of_one_run(tmp_path):
    reference = _suite(tmp_path, "single")
    run_suite(reference)
    shared = _suite(tmp_path, "shared")
    command = [sys.executable, "-m", "aebench.cli", "run", shared.path, "--no-report", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                     for _ in range(2))
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert "Traceback" not in "".join(out + err for out, err in outputs)
    pd.testing.assert_frame_equal(_rows(reference), _rows(shared))
    assert len(list(Path(shared.cache_dir).glob("*/checkpoint.safetensors"))) == 3  # each model trained once


def test_a_job_array_through_submitits_local_executor_gives_the_rows_of_aebench_run(tmp_path):
    pytest.importorskip("submitit")
    from typer.testing import CliRunner

    from aebench.cli import app

    reference = _suite(tmp_path, "plain")
    run_suite(reference)
    launched = _suite(tmp_path, "launched")
    runner = CliRunner()
    dry = runner.invoke(app, ["launch", launched.path, "--dry-run", "--tasks", "2"], catch_exceptions=False)
    assert dry.exit_code == 0 and dry.output.count("(to run)") == 2
    result = runner.invoke(app, ["launch", launched.path, "--cluster", "local", "--tasks", "2"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(_rows(reference), _rows(launched))
    assert (Path(launched.output) / "report" / "table1_fashion_mnist_mini_pgd.md").is_file()
    again = runner.invoke(app, ["launch", launched.path, "--cluster", "local", "--tasks", "2"],
                          catch_exceptions=False)
    assert "nothing to do" in again.output  # a relaunch submits only unfinished work


def test_the_thread_count_honours_the_environment_and_splits_cores_between_workers(monkeypatch):
    import torch

    from aebench import utils

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(utils, "available_cores", lambda: 8)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert utils.set_threads() == 3 and torch.get_num_threads() == 3
        assert utils.set_threads(5) == 5  # an explicit --threads wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert utils.set_threads() == 8 and utils.set_threads(workers=4) == 2
        with pytest.raises(ValueError, match="at least 1"):
            utils.set_threads(0)
    finally:
        torch.set_num_threads(before)


_ORPHAN_PARENT = """
import concurrent.futures, multiprocessing, sys, time
from pathlib import Path
from aebench.utils import exit_with_parent

def worker(pid_file, watch):
    import os
    if watch:
        exit_with_parent(poll=0.1)
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(worker, sys.argv[1], sys.argv[2] == "1")
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still has a pid until it is reaped; it runs nothing.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process adoption")
@pytest.mark.parametrize("watch", [True, False])
def test_a_jobs_worker_ends_when_its_parent_is_killed(tmp_path, watch):
    """``aebench run --jobs K`` workers must not run on, unseen, after their parent is killed."""
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_PARENT)
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), "1" if watch else "0"])
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + (5 if watch else 2)
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The unwatched worker is the control: it outlives its parent, so the check above can tell them apart.
        assert _alive(worker) is not watch
    finally:
        parent.kill()
        if worker is not None and _alive(worker):
            os.kill(worker, signal.SIGKILL)
