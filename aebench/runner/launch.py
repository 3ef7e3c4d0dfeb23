"""Past one process: a suite as a SLURM job array through submitit, or as worker processes on one machine.

Every task runs the same code as ``aebench run --shard i/N`` on the cost-balanced shards of
:mod:`aebench.runner.cost`, writing into the one output folder; measurements are written atomically and each is
computed under a lock (:func:`aebench.utils.file_lock`), so tasks never clash, and a task that dies loses at most
the measurement it was computing. Relaunching the same command submits only the shards with unfinished work. The
report is rendered once, after the last task.

``cluster="slurm"`` submits through submitit (Rapin and others, https://github.com/facebookincubator/submitit), the
optional extra ``aebench[slurm]``; ``cluster="local"`` runs the same path with submitit's local executor, and
:func:`run_parallel` (``aebench run --jobs K``) with worker processes of the standard library.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.progress import SILENT, ProgressLog, format_seconds
from aebench.runner.cost import ShardPlan, assign_shards
from aebench.runner.plan import CellPlan, plan_suite
from aebench.runner.run import choose_model, measurement_state, run_suite
from aebench.suite import Suite, load_suite
from aebench.utils import available_cores, exit_with_parent, set_threads


@dataclass
class LaunchResult:
    """What a launch did: the shard plan, the tasks submitted and how each ended."""

    plan: ShardPlan
    submitted: list[int] = field(default_factory=list)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # task index → error and log path


def run_task(suite_path: str, output: str, index: int, count: int, command_line: dict[str, Any],
             reuse_stale: bool, threads: int | None, watch_parent: bool = False) -> dict[str, Any]:
    """One array task: shard ``index`` of ``count`` (what ``aebench run --shard index/count`` does, no report).

    ``watch_parent`` (local worker processes): end when the process that started this one ends.
    """
    if watch_parent:
        exit_with_parent()
    set_threads(threads)
    import dataclasses

    suite = dataclasses.replace(load_suite(suite_path), output=output)
    summary = run_suite(suite, (index, count), ProgressLog(), reuse_stale=reuse_stale, command_line=command_line)
    return {"run_id": summary.run_id, "finished": len(summary.finished), "skipped": len(summary.skipped),
            "failed": dict(summary.failed)}


def unfinished(cells: list[CellPlan], suite: Suite, reuse_stale: bool = False) -> list[CellPlan]:
    """The cells with at least one measurement still to compute."""
    output = Path(suite.output)
    todo = []
    for cell in cells:
        choice = choose_model(cell, suite.cache_dir, reuse_stale)
        states = (measurement_state(output, cell, m, choice, reuse_stale, SILENT) for m in cell.measurements)
        if any(state.status == "todo" for state in states):
            todo.append(cell)
    return todo


def shard_plan(suite: Suite, tasks: int | None, command_line: dict[str, Any] | None = None,
               reuse_stale: bool = False) -> tuple[ShardPlan, list[int]]:
    """The cost-balanced shards of the whole suite and the indices of those with unfinished work.

    Shards are always computed over every cell, so the assignment is the same whichever cells are done: a relaunch
    submits the shards that still have work, each with the cells it had the first time.
    """
    cells = plan_suite(suite, command_line or {})
    count = max(1, min(tasks or len(cells), len(cells)))
    plan = assign_shards(cells, count, suite.data_root)
    pending = {c.cell_id for c in unfinished(cells, suite, reuse_stale)}
    todo = [i for i, shard in enumerate(plan.cells) if any(c.cell_id in pending for c in shard)]
    return plan, todo


def describe(plan: ShardPlan, todo: list[int]) -> list[str]:
    """Lines for ``aebench launch --dry-run``: cells and estimated time per shard."""
    lines = []
    for i, (cells, seconds) in enumerate(zip(plan.cells, plan.seconds, strict=True)):
        state = "to run" if i in todo else "done"
        lines.append(f"shard {i}: {len(cells)} cells, about {format_seconds(seconds)} ({state}): "
                     + ", ".join(c.cell_id for c in cells))
    return lines


def launch(suite: Suite, *, cluster: str, tasks: int | None = None, partition: str | None = None,
           gpus_per_task: int = 0, cpus_per_task: int | None = None, timeout_min: int = 24 * 60,
           array_parallelism: int | None = None, command_line: dict[str, Any] | None = None,
           reuse_stale: bool = False, log_folder: str | None = None) -> LaunchResult:
    """Submit the shards with unfinished work as one job array and wait for them.

    Raises:
        ImportError: When submitit is not installed (``pip install "aebench[slurm]"``).
        ValueError: For an unknown cluster.
    """
    if cluster not in ("slurm", "local"):
        raise ValueError(f"--cluster must be slurm or local, got {cluster!r}.")
    try:
        import submitit
    except ImportError as err:
        raise ImportError("aebench launch needs submitit: pip install \"aebench[slurm]\" (or pip install submitit).") \
            from err
    plan, todo = shard_plan(suite, tasks, command_line, reuse_stale)
    result = LaunchResult(plan)
    if not todo:
        return result
    executor = submitit.AutoExecutor(folder=log_folder or str(Path(suite.output) / "launch_logs"), cluster=cluster)
    parameters: dict[str, Any] = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_task,
                                  "cpus_per_task": cpus_per_task or available_cores(), "name": f"aebench-{suite.name}"}
    if partition:
        parameters["slurm_partition"] = partition
    if array_parallelism:
        parameters["slurm_array_parallelism"] = array_parallelism
    executor.update_parameters(**parameters)
    count = len(plan.cells)
    threads = cpus_per_task if cluster == "slurm" else max(1, available_cores() // len(todo))
    jobs = executor.map_array(run_task, [suite.path] * len(todo), [suite.output] * len(todo), todo,
                              [count] * len(todo), [command_line or {}] * len(todo), [reuse_stale] * len(todo),
                              [threads] * len(todo))
    result.submitted = list(todo)
    for index, job in zip(todo, jobs, strict=True):
        try:
            result.finished[index] = job.result()
        except Exception as err:  # a task that died is reported with its log; the others' work is kept
            result.failed[index] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} " \
                                   f"(log: {job.paths.stderr})"
    return result


def run_parallel(suite: Suite, jobs: int, *, command_line: dict[str, Any] | None = None,
                 reuse_stale: bool = False) -> list[dict[str, Any]]:
    """``aebench run --jobs K``: K worker processes on this machine, each a cost-balanced shard with cores / K threads.

    Raises:
        ValueError: For fewer than one job.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}.")
    threads = max(1, available_cores() // jobs)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no torch state is forked
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = [pool.submit(run_task, suite.path, suite.output, i, jobs, command_line or {}, reuse_stale, threads,
                               True) for i in range(jobs)]
        return [f.result() for f in futures]
