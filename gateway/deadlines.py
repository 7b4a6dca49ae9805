"""Per-request deadlines kept by one sweeper task instead of one timer per request.

``asyncio.timeout`` arms and cancels a loop timer for every request (~12 us under
uvloop, about 4% of a proxied call here); a gateway's deadline is coarse (seconds to
minutes), so a dict entry per request and one task that wakes every ``resolution``
seconds while requests are in flight does the same job for ~1 us. A request past its
deadline is cancelled and raises ``TimeoutError``, as under ``asyncio.timeout``; a
cancellation from anywhere else (the client went away, shutdown) stays a cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["Deadlines"]

T = TypeVar("T")


class Deadlines:
    """Deadlines of the requests in flight on one event loop."""

    def __init__(self, resolution: float = 0.05):
        """``resolution``: how late, at most, past its deadline a request is stopped (seconds)."""
        self.resolution = resolution
        self._due: dict[asyncio.Task, float] = {}
        self._expired: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    async def run(self, limit: float, call: Awaitable[T]) -> T:
        """Await ``call`` for at most ``limit`` seconds (``TimeoutError`` past it)."""
        task = asyncio.current_task()
        if task is None or task in self._due:  # no task to cancel, or one deadline in it already
            async with asyncio.timeout(limit):
                return await call
        loop = asyncio.get_running_loop()
        self._due[task] = loop.time() + limit
        sweeper = self._sweeper
        if sweeper is None or sweeper.get_loop() is not loop:  # (an app served by a new loop)
            self._sweeper = loop.create_task(self._sweep(loop), name="bitrate-deadlines")
        try:
            return await call
        except asyncio.CancelledError:
            if task in self._expired and task.uncancel() == 0:  # our cancel, and no one else's
                raise TimeoutError(f"deadline of {limit:g}s passed") from None
            raise
        finally:
            self._due.pop(task, None)
            self._expired.discard(task)

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._due:
                await asyncio.sleep(self.resolution)
                now = loop.time()
                for task, due in list(self._due.items()):
                    if due <= now:
                        del self._due[task]
                        self._expired.add(task)
                        task.cancel()
        finally:
            if self._sweeper is asyncio.current_task():
                self._sweeper = None

    async def aclose(self) -> None:
        """Stop the sweeper (the app is shutting down)."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and not sweeper.done() and sweeper.get_loop() is asyncio.get_running_loop():
            sweeper.cancel()
            await asyncio.wait([sweeper])  # (never raises: a cancel of our own caller still reaches it)

    def __len__(self) -> int:
        """Requests with a deadline now."""
        return len(self._due)
