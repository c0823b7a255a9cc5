"""Progress bars: one rich display for a whole main-job run, or a bar of its own for a single command.

Library code asks for a bar with :func:`bar`. Inside :func:`run_display` (the main job opens one)
every bar is a row of that one display, named by the current stage, with items done, tokens per
second where the work is generation, elapsed time and ETA; outside it a bar is its own display, as
a single command shows it. ``enabled=False`` (not a terminal, or tests) shows nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

_DISPLAY: ContextVar[Any] = ContextVar("thinksafe_display", default=None)
_STAGE: ContextVar[str] = ContextVar("thinksafe_stage", default="")


def _columns() -> tuple[Any, ...]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())


@contextmanager
def run_display(console: Any = None, *, enabled: bool = True) -> Iterator[None]:
    """One display for every bar opened inside this block (the main job's whole run)."""
    from rich.progress import Progress

    with Progress(*_columns(), console=console, disable=not enabled) as display:
        token = _DISPLAY.set(display)
        try:
            yield
        finally:
            _DISPLAY.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Name the stage that the bars opened inside this block belong to."""
    token = _STAGE.set(name)
    try:
        yield
    finally:
        _STAGE.reset(token)


@dataclass
class Bar:
    """One row: ``advance`` counts items, ``rate`` shows a throughput (e.g. ``"52.1 tok/s"``)."""

    display: Any
    task: Any

    def advance(self, n: int = 1) -> None:
        self.display.advance(self.task, n)

    def rate(self, text: str) -> None:
        self.display.update(self.task, rate=text)

    def describe(self, text: str) -> None:
        self.display.update(self.task, description=text)


@contextmanager
def bar(description: str, total: int, *, enabled: bool = True) -> Iterator[Bar]:
    """A progress row for ``total`` items: a row of the run's display when one is open, else its own."""
    from rich.progress import Progress

    shared = _DISPLAY.get()
    name = f"{_STAGE.get()} · {description}" if _STAGE.get() else description
    if shared is not None:
        task = shared.add_task(name, total=total, rate="", visible=enabled)
        try:
            yield Bar(shared, task)
        finally:
            shared.update(task, visible=False)  # finished rows leave; the stage rules stay in the log
        return
    with Progress(*_columns(), disable=not enabled) as own:
        yield Bar(own, own.add_task(name, total=total, rate=""))
