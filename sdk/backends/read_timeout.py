"""A bound on every read of a response body: no read waits longer than the backend's ``timeout``.

The HTTP clients' own read timeouts are not enough: when aiohttp's parser fails in the
middle of a body (a chunk-size line that is not hex), it drops its ``sock_read`` timer
and the body's reader waits for data that never comes, until the request's deadline.
:func:`bounded` puts our own bound on each read of a body, for both clients.

An ``asyncio.timeout`` around each read costs ~5 us (a timer armed and cancelled every
time), about as much as the rest of forwarding a streamed chunk. A :class:`ReadClock`
arms one timer per body and moves it lazily instead: a read only notes when it starts
and ends; when the timer fires, it checks whether a read has been waiting ``seconds``,
and re-arms for the moment one could have if not. Time between reads (the consumer
busy, a slow client downstream) is not counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

__all__ = ["ReadClock", "bounded"]


class ReadClock:
    """One body's reads, each bounded by ``seconds`` (see the module docstring): :meth:`reads`
    yields the parts of a body, and raises ``TimeoutError`` when one read waited ``seconds``."""

    __slots__ = ("_cancelling", "_handle", "_loop", "_seconds", "_since", "_task", "_timed_out")

    def __init__(self, seconds: float):
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None  # when the read now waiting began; None between reads
        self._task: asyncio.Task | None = None  # the task waiting in that read
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0  # the task's pending cancellations when the read began
        self._timed_out = False

    async def reads(self, parts: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``parts`` as they come, each read bounded."""
        next_part, now, loop = parts.__anext__, self._loop.time, self._loop
        try:
            while True:
                self._task = task = asyncio.current_task(loop)  # the reader may change between reads
                self._cancelling = task.cancelling() if task is not None else 0
                self._since = started = now()
                if self._handle is None:
                    self._handle = loop.call_at(started + self._seconds, self._check)
                try:
                    part = await next_part()
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if self._took_back():
                        raise TimeoutError(f"no data within {self._seconds}s") from None
                    raise
                finally:
                    self._since = None
                yield part
        finally:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def _check(self) -> None:
        """The timer: cancel the read that waited too long, or re-arm for when one could have."""
        self._handle = None
        since, task = self._since, self._task
        if since is None or task is None:
            return  # no read waiting: the next one re-arms
        due = since + self._seconds
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._timed_out = True
        task.cancel()

    def _took_back(self) -> bool:
        """After a read raised ``CancelledError``: True when this clock cancelled it and nothing
        else did since (the cancellation is then taken back, to be raised as ``TimeoutError``)."""
        if not self._timed_out or self._task is None:
            return False
        self._timed_out = False
        return self._task.uncancel() <= self._cancelling


def bounded(parts: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """``parts`` as they come; a read that waits ``seconds`` raises ``TimeoutError``.
    Call it inside the running event loop."""
    return ReadClock(seconds).reads(parts)
