"""Progress of a long command: a bar on a terminal, a plain line every few seconds elsewhere.

::

    with progress_reporter("route eval", quiet) as progress:
        work(progress=progress)   # calls progress(done, total) as it goes

On a terminal (stderr) it is a rich progress bar, gone when the work ends; elsewhere (CI, a
log file) one line ``route eval: 4096/10000 rows (41%), 35s`` every ``every`` seconds and
one at the end; ``quiet`` shows neither.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress

__all__ = ["progress_reporter"]


@contextmanager
def progress_reporter(
    what: str, quiet: bool = False, *, every: float = 10.0, unit: str = "rows"
) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback for the block (see the module docstring)."""
    console = Console(stderr=True)
    if quiet:
        yield lambda _done, _total: None
    elif console.is_terminal:
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(what, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
    else:
        start = last = time.monotonic()
        state = {"done": 0, "total": 0}

        def line() -> None:
            done, total = state["done"], state["total"]
            share = f" ({100 * done / total:.0f}%)" if total else ""
            print(f"{what}: {done}/{total} {unit}{share}, {time.monotonic() - start:.0f}s", file=sys.stderr)

        def report(done: int, total: int) -> None:
            nonlocal last
            state.update(done=done, total=total)
            if time.monotonic() - last >= every:
                last = time.monotonic()
                line()

        yield report
        if state["done"]:
            line()
