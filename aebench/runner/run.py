"""Running a suite: for every cell, train or load its model, then compute each unfinished measurement.

The unit of work and of resume is a measurement (:mod:`aebench.runner.plan`). Each is written atomically the moment
it finishes and skipped on a rerun when its key matches, so an interrupt or a ``kill -9`` loses at most the
measurement that was running. A failing measurement writes an error record with its traceback and the cell's other
measurements still run; a model that cannot be trained or loaded fails the cell's pending measurements at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from aebench.checkpoint import CheckpointError, load_model, read_metadata, weights_digest
from aebench.models.base import AutoEncoder
from aebench.progress import ProgressLog, format_seconds
from aebench.provenance import drop_run_record, new_run_id, now, run_record, write_run_record
from aebench.results import (
    ResultsError,
    Row,
    error_path,
    examples_path,
    per_image_path,
    read_measurement,
    rows_path,
    write_rows,
)
from aebench.runner.cost import assign_shards
from aebench.runner.measure import MEASURE, CellContext, Outcome
from aebench.runner.plan import CellPlan, Measurement, plan_suite
from aebench.suite import Suite
from aebench.training import CHECKPOINT_NAME, train
from aebench.utils import atomic_write, atomic_write_text, check_writable, file_lock, file_sha256, pick_device


class RunError(ValueError):
    """A run cannot start (an output folder is not writable, ...); nothing was computed."""


@dataclass
class RunSummary:
    """What one ``run_suite`` call did; measurements are named ``<cell>/<measurement>``."""

    run_id: str
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reused_stale: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)  # being computed by another process at the same time


ARRAY_TASK_VARIABLE = "SLURM_ARRAY_TASK_ID"


def parse_shard(text: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """Parse ``"i/N"`` (0 ≤ i < N) into ``(i, N)``; ``"auto/N"`` takes i from ``$SLURM_ARRAY_TASK_ID``.

    Raises:
        ValueError: With the expected format, for anything else.
    """
    environ = dict(os.environ) if environ is None else environ
    head, _, tail = text.partition("/")
    if head == "auto":
        if ARRAY_TASK_VARIABLE not in environ:
            raise ValueError(f"--shard {text!r} reads ${ARRAY_TASK_VARIABLE}, which is not set; run it as a SLURM "
                             "array task (sbatch --array=0-N-1) or give the index, e.g. --shard 0/4.")
        text = f"{environ[ARRAY_TASK_VARIABLE]}/{tail}"
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N with integers (or auto/N), e.g. 0/4; got {text!r}.") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need N ≥ 1 and 0 ≤ i < N.")
    return index, count


# ------------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class ModelChoice:
    """Which weights a cell's measurements use: a checkpoint to load, or a run directory to train (or resume) in.

    Attributes:
        key: The model key the measurements are keyed with.
        settings_key: The same without any code fingerprint.
        run_dir: Training run directory (trained models).
        checkpoint: A finished checkpoint to load, when there is one.
        stale: The checkpoint was trained by other code and is reused on request (``--reuse-stale``).
        settings: What rows record about the model.
    """

    key: str
    settings_key: str
    run_dir: Path | None
    checkpoint: Path | None
    stale: bool
    settings: dict[str, Any]


def training_run_dir(cache_dir: str | Path, cell: CellPlan, code: str | None = None) -> Path:
    """The cache folder of a cell's trained model: readable name, settings key, code fingerprint."""
    config = cell.source.training
    assert config is not None  # only called for trained models
    # The name is for people and may be cut; the keys, which tell configurations apart, never are.
    name = f"{config.model}-{config.dataset}-s{config.seed}"[:60]
    return Path(cache_dir) / f"{name}-{config.settings_key()[:12]}-{(code or config.code)[:8]}"


def _checkpoint_epoch(run_dir: Path) -> int | None:
    """The last finished epoch saved in ``run_dir`` (None: no readable checkpoint), as training resumes from it."""
    path = run_dir / CHECKPOINT_NAME
    try:
        return read_metadata(path).get("epoch") if path.is_file() else None
    except CheckpointError:
        return None


def _finished_checkpoint(run_dir: Path, epochs: int) -> Path | None:
    return run_dir / CHECKPOINT_NAME if _checkpoint_epoch(run_dir) == epochs else None


def choose_model(cell: CellPlan, cache_dir: str, reuse_stale: bool) -> ModelChoice:
    """Decide which weights the cell uses, without training anything."""
    source = cell.source
    if source.instance is not None:
        return ModelChoice(source.key(), source.settings_key(), None, None, False, source.row_settings())
    if source.training is None:
        return ModelChoice(source.key(), source.settings_key(), None, Path(str(source.checkpoint)), False,
                           source.row_settings())
    config = source.training
    run_dir = training_run_dir(cache_dir, cell)
    done = _finished_checkpoint(run_dir, config.training.epochs)
    if done is None and reuse_stale:
        # Same settings, other code: the folder name differs only in its last part.
        prefix = run_dir.name.rsplit("-", 1)[0]
        candidates = sorted(Path(cache_dir).glob(f"{prefix}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
        for folder in candidates:
            old = _finished_checkpoint(folder, config.training.epochs)
            if old is not None:
                saved = read_metadata(old).get("config") or {}
                settings = {**source.row_settings(), "training_key": saved.get("key"),
                            "training_code": saved.get("code")}
                return ModelChoice(str(saved.get("key")), source.settings_key(), folder, old, True, settings)
    return ModelChoice(source.key(), source.settings_key(), run_dir, done, False, source.row_settings())


def obtain_model(cell: CellPlan, choice: ModelChoice, suite: Suite, device: Any,
                 progress: ProgressLog) -> tuple[AutoEncoder, Path | None]:
    """Load the chosen checkpoint, or train the cell's model in its cache folder (resuming a partial run)."""
    if cell.source.instance is not None:  # handed over in memory: nothing to load or train
        return cell.source.instance.to(device).eval(), None
    assert choice.checkpoint is not None or (cell.source.training is not None and choice.run_dir is not None)
    if choice.checkpoint is not None:
        return load_model(choice.checkpoint, device), choice.checkpoint
    # Another process may have finished the training since the choice was made (it held the training lock).
    epochs = cell.source.training.training.epochs
    saved_epoch = _checkpoint_epoch(choice.run_dir)
    if saved_epoch == epochs:
        done = choice.run_dir / CHECKPOINT_NAME
        return load_model(done, device), done
    progress.print(f"{cell.cell_id}: training {cell.source.training.model} for {epochs} epochs in {choice.run_dir}")
    first = int(saved_epoch or 0) + 1
    started, wall_started = now(), time.perf_counter()
    result = train(cell.source.training, run_dir=choice.run_dir, data_root=suite.data_root, device=device,
                   progress=progress)
    seconds = time.perf_counter() - wall_started
    _append_training_time(choice.run_dir, {"started": started, "epochs": [first, epochs], "seconds": round(seconds, 1),
                                           "device": str(device), "threads": torch.get_num_threads()})
    progress.print(f"{cell.cell_id}: trained epochs {first}-{epochs} in {format_seconds(seconds)}")
    return result.model.eval(), result.checkpoint


TRAINING_TIME_NAME = "training_time.jsonl"
"""Per training session in a model's cache folder: when it started, which epochs it trained, its wall time."""


def _append_training_time(run_dir: Path, entry: dict[str, Any]) -> None:
    # Kept beside the checkpoint, outside the training code: timing a run must not change its fingerprint.
    path = run_dir / TRAINING_TIME_NAME
    old = path.read_text() if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(entry) + "\n")


# ------------------------------------------------------------------------------------------------- measurements
def make_rows(suite: Suite, cell: CellPlan, m: Measurement, outcome: Outcome, *, run_id: str, choice: ModelChoice,
              device: str, wall_time: float, reused_stale: bool = False, weights: str | None = None) -> list[Row]:
    """The tidy rows of one measurement (the one place rows are built); ``weights``: the model's weights digest."""
    settings = {**choice.settings, "measurement": m.settings, "reused_stale_model": choice.stale,
                "model_weights_digest": weights}
    common = dict(suite=suite.name, version=suite.version, run_id=run_id, dataset=cell.dataset, model=cell.label,
                  seed=cell.seed, measurement=m.name, wall_time=wall_time, device=device,
                  measurement_key=m.key(choice.key), settings_key=m.settings_key(choice.settings_key),
                  reused_stale=reused_stale or choice.stale, settings=settings)
    return [Row(attack=v.attack, optimizer=v.optimizer, budget=float(v.budget), trial=trial, metric=v.metric,
                value=float(value), higher_is_better=v.higher_is_better, **common)
            for v in outcome.values for trial, value in enumerate(v.values)]


class MeasurementState(NamedTuple):
    """Where one measurement stands in an output folder, from a single read of its rows file."""

    status: str  # "done", "stale" (finished by other code, reusable on request) or "todo"
    weights: str | None = None  # the weights digest its rows record (None: none recorded, or nothing finished)


def measurement_state(output: Path, cell: CellPlan, m: Measurement, choice: ModelChoice, reuse_stale: bool,
                      progress: ProgressLog) -> MeasurementState:
    """Whether ``m`` is finished for ``choice``, and with which weights (rows written before 2026-12-02: unknown)."""
    path = rows_path(output, cell.cell_id, m.name)
    if not path.exists():
        return MeasurementState("todo")
    try:
        rows = read_measurement(path)
    except ResultsError as err:
        progress.print(f"{err} It is computed again.")
        return MeasurementState("todo")
    weights = rows[0].settings.get("model_weights_digest")
    if rows[0].measurement_key == m.key(choice.key):
        return MeasurementState("done", weights)
    if reuse_stale and rows[0].settings_key == m.settings_key(choice.settings_key):
        return MeasurementState("stale", weights)
    return MeasurementState("todo")


def _mark_stale(path: Path) -> None:
    rows = read_measurement(path)
    if not all(r.reused_stale for r in rows):
        write_rows(path, [dataclasses.replace(r, reused_stale=True) for r in rows])


def _record_failure(output: Path, cell: CellPlan, m: Measurement, key: str, err: BaseException, run_id: str,
                    summary: RunSummary, progress: ProgressLog, what: str = "") -> None:
    message = f"{what}{type(err).__name__}: {err}".strip()
    summary.failed[f"{cell.cell_id}/{m.name}"] = message
    record = {"cell": cell.cell_id, "measurement": m.name, "measurement_key": key, "run_id": run_id, "time": now(),
              "error": message, "traceback": "".join(traceback.format_exception(err))}
    atomic_write_text(error_path(output, cell.cell_id, m.name), json.dumps(record, indent=2) + "\n")
    progress.print(f"{cell.cell_id} {m.name}: FAILED: {message.splitlines()[0]}")


def _save_outcome(output: Path, cell: CellPlan, m: Measurement, outcome: Outcome, rows: list[Row]) -> None:
    """Examples and per-image values first, rows last: a measurement is finished only once its rows file exists."""
    for path, arrays in ((examples_path(output, cell.cell_id, m.name), outcome.examples),
                         (per_image_path(output, cell.cell_id, m.name), outcome.per_image)):
        if arrays:
            atomic_write(path, lambda tmp, arrays=arrays: _savez(tmp, arrays))
    write_rows(rows_path(output, cell.cell_id, m.name), rows)
    error_path(output, cell.cell_id, m.name).unlink(missing_ok=True)


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def run_cell(suite: Suite, cell: CellPlan, *, run_id: str, device: Any, progress: ProgressLog, reuse_stale: bool,
             summary: RunSummary, record: dict[str, Any]) -> None:
    """Compute every unfinished measurement of one cell (see the module docstring)."""
    output = Path(suite.output)
    choice = choose_model(cell, suite.cache_dir, reuse_stale)
    pending, finished, stale = [], [], []
    recorded: dict[str, str | None] = {}  # finished or kept measurement → the weights digest its rows record
    for m in cell.measurements:
        state = measurement_state(output, cell, m, choice, reuse_stale, progress)
        if state.status == "todo":
            pending.append(m)
        else:
            (stale if state.status == "stale" else finished).append(m)
            recorded[m.name] = state.weights

    def keep(kept: list[Measurement]) -> None:
        for m in kept:
            if m in stale:  # old code's rows, kept on request (--reuse-stale): they say so
                _mark_stale(rows_path(output, cell.cell_id, m.name))
                summary.reused_stale.append(f"{cell.cell_id}/{m.name}")
            else:
                summary.skipped.append(f"{cell.cell_id}/{m.name}")

    # With nothing to compute, the model is loaded only to compare its weights with digests the rows record: not
    # without a cached checkpoint (a fresh clone of committed results), not for a loaded checkpoint (its SHA-256 is
    # in the key already), not when no row records a digest.
    if not pending and (choice.checkpoint is None or cell.source.training is None
                        or all(v is None for v in recorded.values())):
        keep(finished + stale)
        return
    try:
        # Two processes on one suite (a job array, --jobs, a second run by hand) train a model once: the second
        # waits here, then loads what the first trained.
        lock = (choice.run_dir or output / "cells" / cell.cell_id) / ".train.lock"
        with file_lock(lock, wait=True):
            model, checkpoint = obtain_model(cell, choice, suite, device, progress)
    except Exception as err:  # a model that cannot be built fails its measurements, never the other cells
        keep(finished + stale)
        if not pending:
            progress.print(f"{cell.cell_id}: model: {type(err).__name__}: {err}")
        for m in pending:
            _record_failure(output, cell, m, m.key(choice.key), err, run_id, summary, progress, "model: ")
        return
    weights = weights_digest(model)
    # Trained now (by this run, or by one it waited for): rows written before (older rows record no weights digest)
    # measured another model instance, whose weights may differ (training is deterministic per machine only).
    trained_now = choice.checkpoint is None and cell.source.training is not None
    unvouched: set[str] = set()  # finished rows of unknown weights, computed again for the model trained now
    # A measurement finished with other weights than these (a checkpoint retrained or replaced under the same
    # configuration, e.g. with another thread count) is computed again: a cell never mixes two models. Rows kept
    # by --reuse-stale too: that option keeps old code's numbers of this model, never numbers of another.
    for m in finished + stale:
        if recorded[m.name] is not None and recorded[m.name] != weights:
            progress.print(f"{cell.cell_id} {m.name}: computed with weights {recorded[m.name]}, but the model now has "
                           f"weights {weights}; it is computed again")
            pending.append(m)
        elif recorded[m.name] is None and trained_now:
            progress.print(f"{cell.cell_id} {m.name}: its rows record no weights digest and the model was trained "
                           "again now; it is computed again")
            pending.append(m)
            unvouched.add(m.name)
        else:
            keep([m])
    if not pending:
        return
    if choice.stale:
        progress.print(f"{cell.cell_id}: reusing {checkpoint}, trained by other code (--reuse-stale)")
    record["models"][cell.cell_id] = {"checkpoint": None if checkpoint is None else str(checkpoint),
                                      "sha256": cell.source.checkpoint_sha256 if checkpoint is None
                                      else file_sha256(checkpoint), "reused_stale": choice.stale,
                                      **({"source": cell.source.source} if cell.source.source else {})}
    context = CellContext(model=model, dataset=cell.dataset, seed=cell.seed, device=device,
                          data_root=suite.data_root, cache_dir=suite.cache_dir, progress=progress)
    for m in pending:
        with file_lock(rows_path(output, cell.cell_id, m.name).with_suffix(".lock"), wait=False) as mine:
            if not mine:  # another process is computing it right now; it will write the rows
                summary.elsewhere.append(f"{cell.cell_id}/{m.name}")
                continue
            state = measurement_state(output, cell, m, choice, reuse_stale, progress)
            finished_while_waiting = state.status == "done" and (
                state.weights == weights or (state.weights is None and m.name not in unvouched))
            if finished_while_waiting:
                summary.skipped.append(f"{cell.cell_id}/{m.name}")
                continue
            _measure(suite, cell, m, context, choice, run_id, device, summary, progress, weights)


def _measure(suite: Suite, cell: CellPlan, m: Measurement, context: CellContext, choice: ModelChoice, run_id: str,
             device: Any, summary: RunSummary, progress: ProgressLog, weights: str) -> None:
    output = Path(suite.output)
    started = time.perf_counter()
    try:
        outcome = MEASURE[m.kind](context, m)
        wall = time.perf_counter() - started
        rows = make_rows(suite, cell, m, outcome, run_id=run_id, choice=choice, device=str(device), wall_time=wall,
                         weights=weights)
        _save_outcome(output, cell, m, outcome, rows)
    except Exception as err:  # one failing measurement must not cost the others their results
        _record_failure(output, cell, m, m.key(choice.key), err, run_id, summary, progress)
        return
    summary.finished.append(f"{cell.cell_id}/{m.name}")
    progress.print(f"{cell.cell_id} {m.name}: finished in {format_seconds(wall)}")


def _check_outputs(suite: Suite) -> None:
    problems = [p for p in (check_writable(suite.output, "output folder"),
                            check_writable(suite.cache_dir, "cache folder (cache_dir)")) if p]
    if problems:
        raise RunError("\n".join(problems))


def plan_record(suite: Suite, cells: list[CellPlan], command_line: dict[str, Any]) -> dict[str, Any]:
    """What ``suite.json`` holds: the suite and, per cell, each measurement's current keys (for the report)."""
    return {"suite": suite.as_dict(), "command_line": command_line, "cells": {
        c.cell_id: {"dataset": c.dataset, "model": c.label, "seed": c.seed, "measurements": {
            m.name: {"key": m.key(c.source.key()), "settings_key": m.settings_key(c.source.settings_key())}
            for m in c.measurements}} for c in cells}}


def run_suite(suite: Suite, shard: tuple[int, int] = (0, 1), progress: ProgressLog | None = None, *,
              reuse_stale: bool = False, command_line: dict[str, Any] | None = None,
              models: Sequence[str] | None = None) -> RunSummary:
    """Run every unfinished measurement of ``suite`` (in this shard); never stop at a failed one.

    Args:
        suite: A validated suite.
        shard: ``(i, N)``: run only the cells of shard i of N (cost-balanced, :mod:`aebench.runner.cost`).
        progress: Where progress lines go (default: standard error).
        reuse_stale: Keep models and measurements computed by other code (recorded in their rows).
        command_line: Training settings given on the command line.
        models: Run only the cells of these model labels (within the shard). The plan the report reads stays the
            whole suite's, so the other models' finished work keeps its place in the tables.

    Raises:
        RunError: Before any compute, if an output folder cannot be written.
        RecipeError, ValueError: Before any compute, if a model's configuration does not resolve or ``models``
            names a label the suite does not have.
    """
    progress = progress or ProgressLog()
    labels = [m.label for m in suite.models]
    unknown = [name for name in models or () if name not in labels]
    if unknown:
        raise ValueError(f"{suite.path}: no model labelled {', '.join(map(repr, unknown))} in suite {suite.name!r}; "
                         f"its models are {', '.join(labels)}.")
    device = pick_device(suite.device)
    _check_outputs(suite)
    command_line = dict(command_line or {})
    cells = plan_suite(suite, command_line)
    output = Path(suite.output)
    atomic_write_text(output / "suite.json", json.dumps(plan_record(suite, cells, command_line), indent=2) + "\n")
    summary = RunSummary(run_id=new_run_id())
    record = run_record(summary.run_id, suite.path, device)
    write_run_record(output, record)
    index, count = shard
    mine = list(assign_shards(cells, count, suite.data_root).cells[index]) if count > 1 else cells
    if models:
        mine = [cell for cell in mine if cell.label in models]
    try:
        for number, cell in enumerate(mine, start=1):
            progress.print(f"cell {number}/{len(mine)}: {cell.cell_id}")
            run_cell(suite, cell, run_id=summary.run_id, device=device, progress=progress, reuse_stale=reuse_stale,
                     summary=summary, record=record)
    finally:  # also on Ctrl-C: the record says how far the run got
        record["ended"] = now()
        record["measurements"] = {"finished": len(summary.finished), "skipped": len(summary.skipped),
                                  "reused_stale": len(summary.reused_stale), "failed": len(summary.failed)}
        if summary.finished or summary.failed or summary.reused_stale or record["models"]:
            write_run_record(output, record, latest=True)
        else:  # everything was done already: the records of the runs that did it stay the latest
            drop_run_record(output, record)
    return summary
