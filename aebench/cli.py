"""The ``aebench`` command line: list models, train, and (with the suite runner) run and report suites."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from aebench.models import MODELS, list_models

app = typer.Typer(help="Adversarial-robustness benchmark harness for autoencoders.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
ls_app = typer.Typer(help="List registered models and other components.", no_args_is_help=True)
app.add_typer(ls_app, name="ls")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code=2)


@ls_app.command("models")
def ls_models(pattern: str = typer.Argument("*", help="Shell-style filter, e.g. '*gmm*'.")) -> None:
    """Print every registered model with a one-line description and its paper."""
    table = Table("model", "description", "paper")
    for name in list_models(pattern):
        cls = MODELS[name]
        table.add_row(name, cls.description or (cls.__doc__ or "").strip().splitlines()[0], cls.paper)
    console.print(table)


def _command_line_training(epochs: int | None, batch_size: int | None, lr: float | None) -> dict[str, object]:
    """Training settings given on the command line; options left out are not a layer.

    An option that was not given must not replace a suite's or a recipe's value (the bug this once was).
    """
    return {k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "lr": lr}.items() if v is not None}


THREADS_HELP = "Torch threads (default: the cores this process may use; fewer when other jobs share the machine)."
EPOCHS_HELP = "Replace the training epochs of every model (command-line layer; see `validate --explain`)."
BATCH_HELP = "Replace the training batch size of every model."
LR_HELP = "Replace the learning rate of every model."


@app.command()
def train(
    model: str = typer.Argument(..., help="Registered model name (see `aebench ls models`)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `aebench data ls`)."),
    epochs: int | None = typer.Option(None, help="Override the recipe's epochs."),
    batch_size: int | None = typer.Option(None, help="Override the recipe's batch size."),
    lr: float | None = typer.Option(None, help="Override the recipe's learning rate."),
    seed: int = typer.Option(0, help="Seed for initialisation, batch order and training noise."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ... (auto: cuda when available)."),
    recipe: Path | None = typer.Option(None, help="Recipe YAML (default: baselines/MODEL.yaml)."),
    run_dir: Path | None = typer.Option(None, help="Output folder (default: runs/MODEL-DATASET-sSEED); resumed if "
                                        "it holds this configuration."),
    data_root: Path | None = typer.Option(None, envvar="AEBENCH_DATA", help="Folder with the dataset files."),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
) -> None:
    """Train a model, writing a checkpoint per epoch and a sample grid; prints the test reconstruction MSE."""
    from aebench.config import resolve_training
    from aebench.data import DataError
    from aebench.progress import ProgressLog
    from aebench.training import TrainingDivergedError
    from aebench.training import train as run_training
    from aebench.utils import check_device

    problem = check_device(device)
    if problem:
        _fail(f"--device {problem}")
    _set_threads_or_fail(threads)
    try:
        config = resolve_training(model, dataset, seed=seed, recipe=None if recipe is None else str(recipe),
                                  command_line=_command_line_training(epochs, batch_size, lr),
                                  data_root=None if data_root is None else str(data_root))
        result = run_training(config, run_dir=run_dir, data_root=data_root, device=device,
                              progress=ProgressLog(err_console))
    except (KeyError, ValueError, TypeError, DataError, TrainingDivergedError) as err:
        _fail(str(err).strip("'\""))
        return
    console.print(f"checkpoint:        {result.checkpoint}")
    console.print(f"sample grid:       {result.samples}")
    console.print(f"test recon. MSE:   {result.test_mse:.5f}")


def _set_threads_or_fail(threads: int | None) -> None:
    from aebench.utils import set_threads

    try:
        set_threads(threads)
    except ValueError as err:
        _fail(str(err))


def _load_suite_or_fail(suite_path: Path, check_data: bool = True):
    from aebench.suite import SuiteError, load_suite

    try:
        return load_suite(suite_path, check_data=check_data)
    except SuiteError as err:
        _fail(str(err))


def _plan_or_fail(suite, command_line: dict[str, object]):
    from aebench.data import DataError
    from aebench.runner import plan_suite

    try:
        return plan_suite(suite, command_line)
    except (KeyError, ValueError, TypeError, DataError) as err:
        _fail(f"{suite.path}: {str(err).strip(chr(39))}")


@app.command()
def validate(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file."),
    explain: bool = typer.Option(False, "--explain", help="Print every setting of every cell and where it came from."),
    epochs: int | None = typer.Option(None, help=EPOCHS_HELP),
    batch_size: int | None = typer.Option(None, help=BATCH_HELP),
    lr: float | None = typer.Option(None, help=LR_HELP),
) -> None:
    """Check a suite (keys, types, names, budgets, data and checkpoint files) and resolve every cell, computing none."""
    from aebench.runner import explain_cell

    suite = _load_suite_or_fail(suite_path)
    cells = _plan_or_fail(suite, _command_line_training(epochs, batch_size, lr))
    measurements = sum(len(c.measurements) for c in cells)
    console.print(f"[green]ok[/] {suite_path}: suite {suite.name!r} v{suite.version}, {len(cells)} cells "
                  f"({len(suite.datasets)} datasets × {len(suite.models)} models × {len(suite.seeds)} seeds), "
                  f"{measurements} measurements, N={suite.n_images} × T={suite.n_trials}.")
    if not explain:
        return
    for cell in cells:
        table = Table("setting", "value", "from", title=cell.cell_id, title_justify="left")
        for setting, value, source in explain_cell(cell, suite):
            table.add_row(setting, str(value), source)
        console.print(table)


@app.command()
def run(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file."),
    shard: str = typer.Option("0/1", help="Run only shard i of N (i/N, 0-based; auto/N reads $SLURM_ARRAY_TASK_ID); "
                              "shards are balanced by estimated cost. A sharded run renders no report."),
    jobs: int = typer.Option(1, help="Run this many shards at once in worker processes (cores split between them)."),
    output: Path | None = typer.Option(None, help="Override the suite's output folder."),
    report: bool = typer.Option(True, help="Render tables and figures when the run ends."),
    reuse_stale: bool = typer.Option(False, "--reuse-stale", help="Keep models and measurements computed by other "
                                     "code (a changed code fingerprint); their rows say so."),
    epochs: int | None = typer.Option(None, help=EPOCHS_HELP),
    batch_size: int | None = typer.Option(None, help=BATCH_HELP),
    lr: float | None = typer.Option(None, help=LR_HELP),
    threads: int | None = typer.Option(None, help=THREADS_HELP),
    model: list[str] | None = typer.Option(None, "--model", help="Run only this model's cells (its label in the "
                                           "suite; repeat for several). The report still shows the whole suite."),
) -> None:
    """Train or load every model of a suite, measure it, and write tidy rows, tables and figures.

    Each measurement (reconstruction, fidelity, every attack × optimizer × budget, downstream) is written as soon
    as it finishes and skipped on a rerun; a failing one is recorded and the others go on. The exit code is 1 if
    any measurement failed.
    """
    import dataclasses

    from aebench.progress import ProgressLog
    from aebench.runner import RunError, parse_shard, run_suite

    _set_threads_or_fail(threads)
    suite = _load_suite_or_fail(suite_path)
    if output is not None:
        suite = dataclasses.replace(suite, output=str(output))
    try:
        shard_pair = parse_shard(shard)
    except ValueError as err:
        _fail(str(err))
        return
    command_line = _command_line_training(epochs, batch_size, lr)
    _plan_or_fail(suite, command_line)  # every configuration problem before any compute
    if jobs != 1:
        if model:
            _fail("--model and --jobs cannot be combined yet; run the models one --model at a time.")
            return
        _run_jobs(suite, jobs, command_line, reuse_stale, report)
        return
    try:
        summary = run_suite(suite, shard_pair, ProgressLog(err_console), reuse_stale=reuse_stale,
                            command_line=command_line, models=model)
    except (RunError, ValueError) as err:
        _fail(str(err))
        return
    console.print(f"run {summary.run_id}: measurements {len(summary.finished)} finished, {len(summary.skipped)} "
                  f"skipped (already done), {len(summary.reused_stale)} reused from other code, "
                  f"{len(summary.failed)} failed")
    for name, error in summary.failed.items():
        console.print(f"  [red]failed[/] {name}: {error.splitlines()[0]}", soft_wrap=True)
    if shard_pair[1] > 1:
        console.print(f"shard {shard_pair[0]}/{shard_pair[1]} done; render the report once with "
                      f"`aebench report {suite.output}`")
    elif report:
        _render(Path(suite.output), None, show=True)
    if summary.failed:
        raise typer.Exit(code=1)


def _run_jobs(suite, jobs: int, command_line: dict[str, object], reuse_stale: bool, report: bool) -> None:
    from aebench.runner.launch import run_parallel

    try:
        results = run_parallel(suite, jobs, command_line=command_line, reuse_stale=reuse_stale)
    except ValueError as err:
        _fail(str(err))
        return
    failed = {k: v for r in results for k, v in r["failed"].items()}
    console.print(f"{jobs} jobs: measurements {sum(r['finished'] for r in results)} finished, "
                  f"{sum(r['skipped'] for r in results)} skipped, {len(failed)} failed")
    for name, error in failed.items():
        console.print(f"  [red]failed[/] {name}: {error.splitlines()[0]}", soft_wrap=True)
    if report:
        _render(Path(suite.output), None, show=True)
    if failed:
        raise typer.Exit(code=1)


def _render(run_dir: Path, out_dir: Path | None, show: bool) -> None:
    from aebench.report import render_report

    result = render_report(run_dir, out_dir)
    if show:
        for path in result.written:
            if path.suffix == ".md" and "_noise" not in path.name:
                console.print()
                console.print(path.read_text(), markup=False, soft_wrap=True)
    for problem in result.problems:
        err_console.print(f"[yellow]warning:[/] {problem}", soft_wrap=True)
    if result.failed or result.missing:
        console.print(f"{len(result.failed)} measurement(s) failed and {len(result.missing)} are missing; the tables "
                      "say so in their cells.")
    if result.other_code:
        err_console.print(f"[yellow]warning:[/] {len(result.other_code)} measurement(s) were computed by other code "
                          "than the installed aebench; the tables say so, and `aebench run SUITE` recomputes them.",
                          soft_wrap=True)
    gone = f"; removed {len(result.removed)} left over from an earlier rendering" if result.removed else ""
    console.print(f"report: {len(result.written)} files in {result.written[0].parent}{gone}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="Output folder of `aebench run`."),
    out: Path | None = typer.Option(None, help="Where to write (default RUN_DIR/report)."),
) -> None:
    """Render the suite's tables (LaTeX + Markdown), figures and results.csv from a run folder, re-running nothing."""
    try:
        _render(run_dir, out, show=True)
    except FileNotFoundError as err:
        _fail(str(err))


@app.command()
def launch(
    suite_path: Path = typer.Argument(..., metavar="SUITE", help="Suite YAML file."),
    cluster: str = typer.Option("slurm", help="slurm (a job array through submitit) or local (the same, here)."),
    tasks: int | None = typer.Option(None, help="Array tasks (default: one per cell); cells are balanced by cost."),
    partition: str | None = typer.Option(None, help="SLURM partition."),
    gpus_per_task: int = typer.Option(0, help="GPUs per array task."),
    cpus_per_task: int | None = typer.Option(None, help="CPU cores per task (default: this machine's)."),
    timeout_min: int = typer.Option(24 * 60, help="Time limit per task in minutes."),
    array_parallelism: int | None = typer.Option(None, help="At most this many tasks at once."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the shards and their estimated time; submit nothing."),
    output: Path | None = typer.Option(None, help="Override the suite's output folder."),
    reuse_stale: bool = typer.Option(False, "--reuse-stale", help="As for `aebench run`."),
) -> None:
    """Run a suite as a job array: one task per cost-balanced shard, one output folder, one report at the end.

    Relaunching the same command submits only the shards that still have unfinished measurements.
    """
    import dataclasses

    from aebench.runner.launch import describe, launch, shard_plan

    if cluster not in ("slurm", "local"):  # also for --dry-run, which would otherwise accept any name
        _fail(f"--cluster must be slurm or local, got {cluster!r}.")
    suite = _load_suite_or_fail(suite_path)
    if output is not None:
        suite = dataclasses.replace(suite, output=str(output))
    _plan_or_fail(suite, {})
    if dry_run:
        plan, todo = shard_plan(suite, tasks, reuse_stale=reuse_stale)
        for line in describe(plan, todo):
            console.print(line, soft_wrap=True)
        return
    try:
        result = launch(suite, cluster=cluster, tasks=tasks, partition=partition, gpus_per_task=gpus_per_task,
                        cpus_per_task=cpus_per_task, timeout_min=timeout_min, array_parallelism=array_parallelism,
                        reuse_stale=reuse_stale)
    except (ImportError, ValueError) as err:
        _fail(str(err))
        return
    if not result.submitted:
        console.print("nothing to do: every measurement is finished")
    for index, summary in sorted(result.finished.items()):
        console.print(f"task {index}: {summary['finished']} finished, {summary['skipped']} skipped, "
                      f"{len(summary['failed'])} failed")
    for index, error in sorted(result.failed.items()):
        console.print(f"  [red]task {index} failed[/]: {error}", soft_wrap=True)
    _render(Path(suite.output), None, show=False)
    if result.failed or any(s["failed"] for s in result.finished.values()):
        raise typer.Exit(code=1)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR...", help="Output folders of `aebench run`."),
    table: str = typer.Option("table1", help="The layout: table1 or table2."),
    out: Path | None = typer.Option(None, help="Also write the tables (Markdown and LaTeX) into this folder."),
    allow_other_code: bool = typer.Option(False, help="Compare rows that the installed aebench would compute "
                                          "differently (older attack, metric or training code) instead of refusing."),
) -> None:
    """One table across runs, refusing runs whose protocols (attacks, budgets, N × T, seeds, metrics) or code differ."""
    from aebench.report import LAYOUTS, build_table, summarise, to_latex, to_markdown
    from aebench.report.leaderboard import ProtocolMismatchError
    from aebench.report.leaderboard import compare as compare_runs

    if table not in LAYOUTS:
        _fail(f"--table must be one of {sorted(LAYOUTS)}, got {table!r}.")
    try:
        rows, _ = compare_runs(run_dirs, allow_other_code)
    except (ProtocolMismatchError, FileNotFoundError) as err:
        _fail(str(err))
        return
    summary = summarise(rows)
    for dataset in dict.fromkeys(summary.dataset):
        for optimizer in [o for o in dict.fromkeys(summary.optimizer) if o not in ("none", "noise")]:
            built = build_table(summary, LAYOUTS[table], optimizer, dataset)
            console.print(f"**{built.title}**\n\n{to_markdown(built)}", markup=False, soft_wrap=True)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"compare_{table}_{dataset}_{optimizer}.md").write_text(to_markdown(built))
                (out / f"compare_{table}_{dataset}_{optimizer}.tex").write_text(to_latex(built))


@app.command("import")
def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="authors, pythae or state_dict."),
    source: Path = typer.Argument(..., help="The foreign checkpoint (a file, or a pythae model folder)."),
    model: str | None = typer.Option(None, help="The aebench model it becomes (authors: a GMM-DAE model)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="The dataset it was trained on."),
    output: Path = typer.Option(..., help="The aebench checkpoint to write (.safetensors)."),
    option: list[str] = typer.Option([], "--set", help="A format option as KEY=VALUE (YAML value), repeatable: "
                                     "code=gmm_dae, factory=pkg.mod:make, encode=embed, allow_pickle=true, ..."),
    data_root: Path | None = typer.Option(None, envvar="AEBENCH_DATA", help="Folder with the dataset files."),
) -> None:
    """Convert a checkpoint of another code base into an aebench checkpoint that records its source."""
    import yaml

    from aebench.adapters import ForeignCheckpointError, import_checkpoint, rebuildable, save_imported

    options = {}
    for item in option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--set {item!r}: write KEY=VALUE, e.g. --set code=gmm_dae.")
        options[key] = yaml.safe_load(value)
    try:
        imported = import_checkpoint(fmt, source, model=model, dataset=dataset,
                                     data_root=None if data_root is None else str(data_root), **options)
        if not rebuildable(imported.model):
            _fail(f"{source}: its networks were unpickled and cannot be written as an aebench checkpoint; evaluate "
                  "it from a suite (checkpoint: {format: ..., allow_pickle: true}) instead.")
        path = save_imported(imported, output, dataset)
    except (KeyError, TypeError, ValueError, ImportError, ForeignCheckpointError) as err:
        _fail(str(err).strip("'\""))
        return
    console.print(f"wrote {path}: {imported.model.registry_name} from {fmt} {source} (sha256 "
                  f"{imported.source.get('sha256')})")


from aebench.data.cli import app as data_app  # noqa: E402  (sub-command owned by the data package)

app.add_typer(data_app, name="data", help="Dataset files: list, locate and download.")


def main() -> None:
    """Entry point of the ``aebench`` console script."""
    app()


if __name__ == "__main__":
    main()
