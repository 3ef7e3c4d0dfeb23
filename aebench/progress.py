"""Progress of long work that a person at a terminal and a batch job's log file can both read.

On a terminal a task shows a live rich bar. Anywhere else (output to a file, a scheduler's log) a live bar prints
nothing useful, so a task prints a line at most every ``interval`` seconds (30 by default) with how far it got and
the estimated time left, and nothing at all when it finishes faster than that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

HEARTBEAT_SECONDS = 30.0


def format_seconds(seconds: float) -> str:
    """``95`` → ``"1 min 35 s"``; short and readable in a log."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class TaskProgress:
    """One running task: call :meth:`update` or :meth:`advance` as work gets done."""

    def __init__(self, log: ProgressLog, label: str, total: float, unit: str) -> None:
        self.log, self.label, self.total, self.unit = log, label, max(float(total), 1e-12), unit
        self.completed = 0.0
        self.started = self.last_line = log.clock()
        self._bar: Progress | None = None
        self._bar_task: int | None = None

    def advance(self, amount: float = 1.0, info: str = "") -> None:
        """Add ``amount`` to the work done."""
        self.update(self.completed + amount, info)

    def update(self, completed: float, info: str = "") -> None:
        """Set the work done to ``completed`` (out of ``total``)."""
        self.completed = min(float(completed), self.total)
        if self._bar is not None and self._bar_task is not None:
            self._bar.update(self._bar_task, completed=self.completed, info=info)
            return
        now = self.log.clock()
        if self.log.enabled and now - self.last_line >= self.log.interval:
            self.last_line = now
            self.log.console.print(self.line(now, info), markup=False, highlight=False, soft_wrap=True)

    def line(self, now: float, info: str = "") -> str:
        """The heartbeat line: done / total, share, elapsed time and the estimated time left."""
        elapsed = now - self.started
        share = self.completed / self.total
        left = elapsed * (1 - share) / share if share > 0 else float("nan")
        eta = format_seconds(left) if share > 0 else "unknown"
        done = f"{self.completed:,.0f}/{self.total:,.0f} {self.unit} ({100 * share:.0f}%)" if self.unit else \
            f"{100 * share:.0f}%"
        text = f"  {self.label}: {done}, {format_seconds(elapsed)} elapsed, about {eta} left"
        return text + (f" [{info}]" if info else "")


class ProgressLog:
    """Hands out :class:`TaskProgress` objects that draw a bar on a terminal and print heartbeats elsewhere.

    Args:
        console: Where lines and bars go.
        enabled: False silences everything (tests, nested work).
        interval: Seconds between heartbeat lines when the console is not a terminal.
        clock: Time source (monotonic seconds), replaceable in tests.
    """

    def __init__(self, console: Console | None = None, enabled: bool = True, interval: float = HEARTBEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console(stderr=True)
        self.enabled, self.interval, self.clock = enabled, interval, clock

    @contextlib.contextmanager
    def task(self, label: str, total: float, unit: str = "steps") -> Iterator[TaskProgress]:
        """A task with ``total`` units of work; a live bar only while the block runs."""
        task = TaskProgress(self, label, total, unit)
        if not (self.enabled and self.console.is_terminal):
            yield task
            return
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=True) as bar:
            task._bar, task._bar_task = bar, bar.add_task(label, total=task.total, info="")
            yield task

    def print(self, message: str) -> None:
        """A plain line (nothing when disabled)."""
        if self.enabled:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)


SILENT = ProgressLog(Console(quiet=True), enabled=False)
"""A progress log that prints nothing, the default of library functions called without one."""
