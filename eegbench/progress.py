"""Progress bars for long steps: rich bars when the CLI enables them, silent otherwise."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_progress = None  # a rich.progress.Progress while the CLI shows bars


@contextmanager
def bars() -> Iterator[None]:
    """Show progress bars for everything tracked inside this block (on the main process of a launch only)."""
    global _progress
    from eegbench.runtime import is_main_process

    if not is_main_process():
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as progress:
        _progress = progress
        try:
            yield
        finally:
            _progress = None


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items``, advancing a bar named ``description`` when bars are shown."""
    if _progress is None:
        yield from items
        return
    task = _progress.add_task(description, total=total if total is not None else len(items))  # type: ignore[arg-type]
    for item in items:
        yield item
        _progress.advance(task)


def callback(description: str):
    """A ``(done, total)`` callback driving one bar, for code that reports its own progress; the bar appears at
    the first report, so work that turns out to be cached (a world or model already built) shows none."""
    if _progress is None:
        return None
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = _progress.add_task(description, total=total)
        _progress.update(task, completed=done, total=total)

    return update
