"""The optional webhook: each live verdict change POSTed as JSON to one URL (``live.webhook``).

:meth:`Webhook.notify` only puts the body on a bounded queue (full: dropped and counted), and
one task sends them in order, each within ``timeout`` seconds; a failed POST is logged and
dropped, never retried. Nothing here can slow a request. httpx's errors are translated at one
place (:func:`http_post`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

__all__ = ["Post", "Webhook", "http_post"]

log = logging.getLogger("bitrate.live")

Post = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Sends one JSON body to a URL; raises ``OSError`` when it did not arrive."""


def http_post(client: httpx.AsyncClient) -> Post:
    """A :data:`Post` on ``client``: a non-2xx answer or an httpx error becomes ``OSError``."""

    async def post(url: str, body: dict[str, Any]) -> None:
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise OSError(f"{type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise OSError(f"status {response.status_code}")

    return post


class Webhook:
    """Posts verdict changes to ``url`` in the background (see the module docstring)."""

    def __init__(self, url: str, *, post: Post | None = None, size: int = 64, timeout: float = 5.0):
        """``post`` sends one body (default: an httpx client made at :meth:`start`)."""
        self.url = url
        self.sent = 0
        """Bodies delivered."""
        self.dropped = 0
        """Bodies dropped: the queue was full, or the POST failed."""
        self._post = post
        self._client: httpx.AsyncClient | None = None
        self._timeout = timeout
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self._task: asyncio.Task[None] | None = None

    def notify(self, body: dict[str, Any]) -> bool:
        """Queue ``body`` without waiting; False when the queue is full (dropped)."""
        try:
            self._queue.put_nowait(body)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def start(self) -> None:
        """Start the sender on the running loop."""
        if self._post is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._post = http_post(self._client)
        self._task = asyncio.create_task(self._send(), name="live-webhook")

    async def aclose(self, grace: float = 2.0) -> None:
        """Send what is queued for up to ``grace`` seconds, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send(self) -> None:
        assert self._post is not None
        while True:
            body = await self._queue.get()
            try:
                await asyncio.wait_for(self._post(self.url, body), self._timeout)
                self.sent += 1
            except (OSError, TimeoutError) as exc:
                self.dropped += 1
                log.warning("live webhook: a verdict change was not delivered (%s)", exc)
            finally:
                self._queue.task_done()
