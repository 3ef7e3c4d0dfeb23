"""How far ``aebench.runner.cost``'s estimates are from the wall times that results folders record.

``aebench launch --dry-run`` prints each shard's estimated time and ``--shard``/``--jobs`` balance cells by it, so
its rates should be measured ones. This script plans each given folder's suite, matches every recorded measurement
of the current code (its key equals the plan's) with its estimate, and prints, per optimizer × objective × budget,
the median seconds per (image, trial) pair measured and estimated and their ratio. Training is compared where a
model's cache folder still holds ``training_time.jsonl`` (written by ``aebench run`` beside the checkpoint).
Nothing is computed: it reads rows and cache folders only.

Usage:
    python benchmarks/cost_model.py [results/table1_fashion_mnist results/table2_full results/audit]
        [--cache-dir runs/cache]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from aebench.results import read_rows
from aebench.runner import plan_suite
from aebench.runner.cost import measurement_seconds, training_seconds
from aebench.runner.plan import CellPlan
from aebench.runner.run import TRAINING_TIME_NAME, choose_model
from aebench.suite import Suite, load_suite

DEFAULT_FOLDERS = ("results/table1_fashion_mnist", "results/table2_full", "results/audit")


def planned(folder: Path) -> tuple[Suite, list[CellPlan]]:
    """The folder's suite (from the path ``suite.json`` records) and its cells, planned with the installed code."""
    record = json.loads((folder / "suite.json").read_text())
    suite = load_suite(record["suite"]["path"])
    return suite, plan_suite(suite, record.get("command_line") or {})


def attack_times(folder: Path, cells: list[CellPlan]) -> list[tuple[tuple[str, str, float], float, float, int]]:
    """(optimizer, attack, budget), measured seconds, estimated seconds and pairs of every current attack row."""
    rows = read_rows(folder)
    first = rows.drop_duplicates(["dataset", "model", "seed", "measurement"]).set_index(
        ["dataset", "model", "seed", "measurement"])
    found = []
    for cell in cells:
        for m in cell.measurements:
            where = (cell.dataset, cell.label, cell.seed, m.name)
            if m.kind != "attack" or where not in first.index:
                continue
            row = first.loc[where]
            if row["measurement_key"] != m.key(cell.source.key()):  # older code's timing: not what runs now
                continue
            pairs = m.settings["n_images"] * m.settings["n_trials"]
            group = (m.settings["optimizer"], m.settings["attack"], float(m.settings["budget"]))
            found.append((group, float(row["wall_time"]), measurement_seconds(m), pairs))
    return found


def training_times(suite: Suite, cells: list[CellPlan], cache_dir: str) -> list[tuple[str, float, float]]:
    """Cell id, measured and estimated training seconds, for every cell whose cache folder records its training."""
    found = []
    for cell in cells:
        choice = choose_model(cell, cache_dir, reuse_stale=False)
        log = None if choice.run_dir is None else choice.run_dir / TRAINING_TIME_NAME
        if log is None or not log.is_file() or cell.source.training is None:
            continue
        entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        epochs = sum(e["epochs"][1] - e["epochs"][0] + 1 for e in entries)
        measured = sum(e["seconds"] for e in entries)
        estimated = training_seconds(cell, suite.data_root) * epochs / cell.source.training.training.epochs
        found.append((f"{cell.cell_id} ({epochs} epochs, threads {entries[-1].get('threads')})", measured, estimated))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=list(DEFAULT_FOLDERS))
    parser.add_argument("--cache-dir", default="runs/cache")
    args = parser.parse_args()
    plans = {folder: planned(folder) for folder in map(Path, args.folders)}  # planning hashes code: once each
    groups: dict[tuple[str, str, float], list[tuple[float, float]]] = defaultdict(list)
    total_measured = total_estimated = 0.0
    for folder, (_, cells) in plans.items():
        for group, measured, estimated, pairs in attack_times(folder, cells):
            groups[group].append((measured / pairs, estimated / pairs))
            total_measured += measured
            total_estimated += estimated
    print(f"{'optimizer':<10} {'attack':<18} {'budget':>6} {'n':>3} {'measured s/pair':>16} {'estimated':>10} "
          f"{'ratio':>6}")
    for (optimizer, attack, budget), times in sorted(groups.items()):
        measured = statistics.median(t[0] for t in times)
        estimated = statistics.median(t[1] for t in times)
        print(f"{optimizer:<10} {attack:<18} {budget:>6g} {len(times):>3} {measured:>16.4f} {estimated:>10.4f} "
              f"{measured / estimated:>6.2f}")
    if total_estimated:
        print(f"all attacks: measured {total_measured:.0f} s, estimated {total_estimated:.0f} s, "
              f"ratio {total_measured / total_estimated:.2f}")
    trained = [t for suite, cells in plans.values() for t in training_times(suite, cells, args.cache_dir)]
    for name, measured, estimated in trained:
        print(f"training {name}: measured {measured:.0f} s, estimated {estimated:.0f} s, ratio "
              f"{measured / estimated:.2f}")
    if not trained:
        print(f"training: no {TRAINING_TIME_NAME} under {args.cache_dir} for these suites' models")


if __name__ == "__main__":
    main()
