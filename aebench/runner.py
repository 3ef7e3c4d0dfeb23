"""The suite runner: expand a suite into cells, train or load each model, attack it, write tidy rows.

Each cell (dataset × model × seed) is independent and writes its own rows file atomically, so a
rerun skips finished cells, a failing cell is recorded and the others go on, and ``--shard i/N``
splits a suite over the jobs of any cluster scheduler. Protocol (DESIGN.md): T trials, each drawing
N test images with its own seed; all images and trials of a cell are attacked as one batch.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from aebench.attacks import run_attack
from aebench.cell_metrics import downstream_rows, fidelity_rows, reconstruction_rows
from aebench.checkpoint import atomic_write, load_model, read_metadata
from aebench.data import ImageDataset, load_dataset
from aebench.metrics import AttackOutcome, metrics_for
from aebench.model import AutoEncoder
from aebench.provenance import git_hash, package_versions
from aebench.recipes import resolve_recipe
from aebench.results import cell_error_path, cell_rows_path, read_cell_rows, write_rows
from aebench.suite import AttackSpec, Cell, Suite
from aebench.training import pick_device, train

NOISE_OPTIMIZER = "noise"


@dataclass
class RunSummary:
    """What one ``run_suite`` call did."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/N"`` (0 ≤ i < N) into ``(i, N)``.

    Raises:
        ValueError: With the expected format, for anything else.
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N with integers, e.g. 0/4; got {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need N ≥ 1 and 0 ≤ i < N.")
    return index, count


def _seed_for(*parts: Any) -> int:
    """A stable 63-bit seed derived from ``parts`` (Python's hash() is salted per process)."""
    digest = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def trial_indices(n_test: int, n_images: int, n_trials: int, seed: int) -> torch.Tensor:
    """(T, N) test-set indices: each trial draws N distinct images with its own seed."""
    if n_images > n_test:
        raise ValueError(f"n_images={n_images} exceeds the {n_test} test images; lower n_images in the suite.")
    rows = [torch.randperm(n_test, generator=torch.Generator().manual_seed(_seed_for("trial", seed, t)))[:n_images]
            for t in range(n_trials)]
    return torch.stack(rows)


def target_indices(dataset: ImageDataset, sources: torch.Tensor, seed: int) -> torch.Tensor:
    """The latent attack's target per source: the next test image of another class (cyclically).

    Without labels (CelebA), a uniformly random other image, as in the authors' scripts.
    """
    n = len(dataset)
    flat = sources.reshape(-1)
    if dataset.labels is None:
        offset = torch.randint(1, n, flat.shape, generator=torch.Generator().manual_seed(_seed_for("target", seed)))
        return ((flat + offset) % n).reshape(sources.shape)
    labels = dataset.labels
    targets = torch.empty_like(flat)
    for i, src in enumerate(flat.tolist()):
        j = (src + 1) % n
        while labels[j] == labels[src]:
            j = (j + 1) % n
        targets[i] = j
    return targets.reshape(sources.shape)


def obtain_model(cell: Cell, device: torch.device, console: Console) -> AutoEncoder:
    """Load the cell's checkpoint, or train its model (cached by the hash of model, recipe, data and seed)."""
    spec, suite = cell.model, cell.suite
    checkpoint = spec.checkpoint_for(cell.dataset)
    if checkpoint:
        trained_on = read_metadata(checkpoint).get("dataset")
        if trained_on not in (None, cell.dataset):
            raise ValueError(f"Checkpoint {checkpoint} of model {spec.label!r} was trained on {trained_on!r}, not on "
                             f"{cell.dataset!r}; give a per-dataset mapping under 'checkpoint'.")
        return load_model(checkpoint, device)
    recipe_path = resolve_recipe(spec.name, spec.recipe)
    recipe_text = recipe_path.read_text() if recipe_path else ""
    key = _seed_for(spec.name, spec.overrides, recipe_text, suite.training, cell.dataset, cell.seed)
    # The name is for people and may be cut; the key, which tells configurations apart, never is.
    run_dir = Path(suite.cache_dir) / f"{f'{spec.name}-{cell.dataset}-s{cell.seed}'[:60]}-{key:016x}"
    result = train(spec.name, cell.dataset, recipe_path=recipe_path, seed=cell.seed, device=str(device),
                   run_dir=run_dir, data_root=suite.data_root, model_overrides=spec.overrides,
                   training_overrides=suite.training, console=console, progress=True)
    return result.model.eval()


@dataclass
class _CellData:
    """The attacked images of a cell: (T·N) sources and their latent-attack targets."""

    x: torch.Tensor
    target: torch.Tensor
    labels: torch.Tensor | None  # of the sources, for the downstream classifier
    n_trials: int
    n_images: int


def _cell_data(cell: Cell, test_set: ImageDataset) -> _CellData:
    suite = cell.suite
    sources = trial_indices(len(test_set), suite.n_images, suite.n_trials, cell.seed)
    targets = target_indices(test_set, sources, cell.seed)
    labels = None if test_set.labels is None else test_set.labels[sources.reshape(-1)]
    return _CellData(test_set.batch(sources.reshape(-1)), test_set.batch(targets.reshape(-1)), labels,
                     suite.n_trials, suite.n_images)


def _attack_outcome(model: AutoEncoder, data: _CellData, spec: AttackSpec, optimizer: str, budget: float,
                    seed: int, chunk: int, device: torch.device) -> AttackOutcome:
    """Attack every (image, trial) pair in chunks of ``chunk`` and gather what the metrics need."""
    generator = torch.Generator(device="cpu").manual_seed(_seed_for("attack", seed, spec.name, optimizer, budget))
    pieces: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "x_adv", "recon", "adv_recon", "objective",
                                                            "target", "target_recon")}
    options = spec.options if optimizer == spec.optimizer else {}
    for start in range(0, data.x.shape[0], chunk):
        x = data.x[start : start + chunk].to(device)
        target = data.target[start : start + chunk].to(device) if spec.name == "latent" else None
        result = run_attack(model, x, attack=spec.name, budget=budget, optimizer=optimizer, target=target,
                            generator=generator, **options)
        with torch.no_grad():
            pieces["x"].append(x.cpu())
            pieces["x_adv"].append(result.x_adv.detach().cpu())
            pieces["recon"].append(model.reconstruct(x).cpu())
            pieces["adv_recon"].append(model.reconstruct(result.x_adv.detach()).cpu())
            pieces["objective"].append(result.objective.detach().cpu())
            if target is not None:
                pieces["target"].append(target.cpu())
                pieces["target_recon"].append(model.reconstruct(target).cpu())
    joined = {k: torch.cat(v) if v else None for k, v in pieces.items()}
    return AttackOutcome(attack=spec.name, **joined)


def evaluate_cell(cell: Cell, model: AutoEncoder, test_set: ImageDataset, device: torch.device,
                  on_step: Any = None) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Attack a model with every attack, optimizer and budget of the suite; return rows and example images.

    Returns:
        The tidy rows (trial means of every metric) and, for Figure 3, a few example images per attack.
    """
    suite = cell.suite
    model.eval()
    data = _cell_data(cell, test_set)
    base = {"suite": suite.name, "version": suite.version, "dataset": cell.dataset, "model": cell.model.label,
            "seed": cell.seed, "device": str(device), "versions": json.dumps(package_versions()), "git": git_hash(),
            "config_hash": cell.config_hash()}
    rows = reconstruction_rows(base, model, test_set, device) + fidelity_rows(cell, base, model, device)
    examples: dict[str, np.ndarray] = {}
    downstream_images: torch.Tensor | None = None
    downstream_optimizer = "none"
    noise_done: set[str] = set()
    for spec in suite.attacks:
        wants_noise = suite.noise_baseline and spec.optimizer != NOISE_OPTIMIZER and spec.name not in noise_done
        noise_done.add(spec.name)  # one noise baseline per attack objective, however many optimizers run it
        optimizers = [spec.optimizer] + ([NOISE_OPTIMIZER] if wants_noise else [])
        for optimizer in optimizers:
            for budget in spec.budgets:
                start = time.perf_counter()
                outcome = _attack_outcome(model, data, spec, optimizer, budget, cell.seed, suite.attack_batch_size,
                                          device)
                wall = time.perf_counter() - start
                for metric in metrics_for(spec.name, suite.metrics):
                    per_trial = metric.fn(outcome).reshape(data.n_trials, data.n_images).double().mean(dim=1)
                    rows += [{**base, "attack": spec.name, "optimizer": optimizer, "budget": budget, "trial": t,
                              "metric": metric.name, "value": float(v), "higher_is_better": metric.higher_is_better,
                              "wall_time": wall} for t, v in enumerate(per_trial.tolist())]
                if optimizer != NOISE_OPTIMIZER:
                    _keep_examples(examples, outcome, f"{spec.name}/{optimizer}/{budget:g}", suite.examples)
                    if (spec.name == "latent" and suite.downstream is not None and downstream_images is None
                            and budget == suite.downstream.budget):
                        downstream_images, downstream_optimizer = outcome.x_adv, optimizer
                if on_step is not None:
                    on_step()
    rows += downstream_rows(cell, base, model, test_set, downstream_images, data.labels, device, downstream_optimizer)
    return rows, examples


def _keep_examples(store: dict[str, np.ndarray], outcome: AttackOutcome, key: str, count: int) -> None:
    for name in ("x", "recon", "x_adv", "adv_recon", "target"):
        images = getattr(outcome, name)
        if images is not None and count > 0:
            store[f"{key}/{name}"] = (images[:count].clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def steps_per_cell(suite: Suite) -> int:
    """Attack runs per cell (attacks × optimizers × budgets, noise once per objective), for the progress bar."""
    steps, noise_done = 0, set()
    for a in suite.attacks:
        noise = suite.noise_baseline and a.optimizer != NOISE_OPTIMIZER and a.name not in noise_done
        noise_done.add(a.name)
        steps += len(a.budgets) * (1 + noise)
    return steps


def _is_finished(cell: Cell) -> bool:
    path = cell_rows_path(cell.suite.output, cell.cell_id)
    if not path.exists():
        return False
    rows = read_cell_rows(path)
    return bool(rows) and rows[0].get("config_hash") == cell.config_hash()


def _save_examples(path: Path, examples: dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **examples)

    atomic_write(path, write)


def run_suite(suite: Suite, shard: tuple[int, int] = (0, 1), console: Console | None = None,
              progress: bool = True) -> RunSummary:
    """Run every unfinished cell of ``suite`` (in this shard) and write its rows; never stop at a failed cell."""
    console = console or Console(stderr=True)
    device = pick_device(suite.device)
    output = Path(suite.output)
    output.mkdir(parents=True, exist_ok=True)
    meta = {"suite": suite.as_dict(), "versions": package_versions(), "git": git_hash(), "device": str(device),
            "cells": {c.cell_id: c.config_hash() for c in suite.cells()}}
    atomic_write(output / "suite.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    index, count = shard
    cells = suite.cells()[index::count]
    summary = RunSummary()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=not progress) as bar:
        cells_task = bar.add_task("cells", total=len(cells))
        for cell in cells:
            steps = bar.add_task(f"  {cell.cell_id}", total=steps_per_cell(cell.suite))
            started = time.perf_counter()
            try:
                if _is_finished(cell):
                    summary.skipped.append(cell.cell_id)
                    continue
                model = obtain_model(cell, device, console)
                test_set = load_dataset(cell.dataset, "test", suite.data_root)
                rows, examples = evaluate_cell(cell, model, test_set, device, lambda: bar.advance(steps))
                _save_examples(output / "cells" / f"{cell.cell_id}.examples.npz", examples)
                write_rows(cell_rows_path(output, cell.cell_id), rows)
                cell_error_path(output, cell.cell_id).unlink(missing_ok=True)
                summary.finished.append(cell.cell_id)
                console.print(f"cell {cell.cell_id} finished in {time.perf_counter() - started:.0f} s")
            except Exception as err:  # one broken cell must not cost the others their results
                summary.failed[cell.cell_id] = f"{type(err).__name__}: {err}"
                record = {"cell": cell.cell_id, "error": summary.failed[cell.cell_id], "traceback": traceback.format_exc()}
                atomic_write(cell_error_path(output, cell.cell_id), lambda tmp: tmp.write_text(json.dumps(record, indent=2)))
                console.print(f"[red]cell {cell.cell_id} failed:[/] {summary.failed[cell.cell_id]}")
            finally:
                bar.remove_task(steps)
                bar.advance(cells_task)
    return summary
