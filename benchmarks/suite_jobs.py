"""Suite throughput with ``aebench run --jobs K`` at K = 1, 2, 4, measured side by side in one run.

The same small suite (four cells on the embedded Fashion-MNIST subset: two epochs of training and a few attacks
each) runs from scratch once per K, each time in a fresh output and cache folder, with the cores split between the
K workers. Printed: wall time, cells per minute, and the speed-up over K = 1.

Usage:
    python benchmarks/suite_jobs.py                 # K = 1, 2, 4
    python benchmarks/suite_jobs.py --jobs 1 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SUITE = {
    "name": "jobs_benchmark", "version": 1, "datasets": ["fashion_mnist_mini"],
    "models": [{"name": "gmm_dae"}, {"name": "vae"}, {"name": "beta_vae"}, {"name": "robust_gmm_dae"}],
    "training": {"epochs": 2, "batch_size": 100},
    "attacks": [{"name": "latent", "optimizer": "pgd", "budgets": [1, 3]},
                {"name": "max_damage", "optimizer": "pgd", "budgets": [1, 3]}],
    "noise_baseline": False, "n_images": 50, "n_trials": 4, "device": "cpu",
}


def run(jobs: int, folder: Path) -> float:
    suite = {**SUITE, "output": str(folder / "out"), "cache_dir": str(folder / "cache")}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aebench.cli", "run", str(path), "--jobs", str(jobs), "--no-report"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    cells = len(SUITE["models"])
    results = {}
    for jobs in args.jobs:
        with tempfile.TemporaryDirectory() as folder:
            results[jobs] = run(jobs, Path(folder))
        print(f"--jobs {jobs}: {results[jobs]:6.1f} s, {60 * cells / results[jobs]:5.2f} cells/min, "
              f"speed-up {results[args.jobs[0]] / results[jobs]:4.2f}x over --jobs {args.jobs[0]}", flush=True)


if __name__ == "__main__":
    main()
