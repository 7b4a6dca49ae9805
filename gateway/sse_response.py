"""Streaming answers as server-sent events, with an explicit state machine.

::

    OPEN ──headers sent──► STREAMING ──last chunk, "data: [DONE]"──► DONE
                              │ ├──backend fails mid-stream: "data: {"error": ...}"──► FAILED
                              │ ├──request_timeout passes: error event (504)──────────► FAILED
                              │ └──the server stops past its grace: error event (503)─► FAILED
                              └──client disconnects──► CANCELLED

Every exit ends the routed stream with ``aclose()`` (shielded from cancellation),
which cancels the backend's generation. A FAILED stream never sends ``[DONE]``:
the client sees an error, not a clean but truncated answer. Errors before the
first byte never get here; the engine raises them and they become a status.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.cancellation import shutting_down
from gateway.deadlines import Deadlines
from gateway.errors import encode_error, status_of
from sdk.decision import Decision
from sdk.errors import BackendTimeout, BitrateError, InternalError
from sdk.protocol import ChatCompletionChunk, Usage

__all__ = ["DONE_EVENT", "SSEResponse", "StreamState", "chunk_event", "error_event"]

log = logging.getLogger("bitrate.gateway")

DONE_EVENT = b"data: [DONE]\n\n"
_to_json = ChatCompletionChunk.__pydantic_serializer__.to_json


class StreamState(enum.Enum):
    """Where a streamed answer is; see the module docstring."""

    OPEN = "open"
    STREAMING = "streaming"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RoutedChunks(Protocol):
    """What the engine's ``RoutedStream`` offers the encoder."""

    decision: Decision

    def batches(self) -> Any: ...

    async def aclose(self) -> None: ...


async def _shielded(cleanup: Awaitable[None]) -> None:
    """Run ``cleanup`` to its end even if this task is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(cleanup)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def chunk_event(chunk: ChatCompletionChunk) -> bytes:
    """One ``data:`` event carrying ``chunk`` (JSON encoded once, straight to bytes)."""
    return b"data: " + _to_json(chunk) + b"\n\n"


def error_event(exc: BitrateError) -> bytes:
    """The ``data: {"error": ...}`` event that ends a failed stream."""
    return b"data: " + encode_error(exc) + b"\n\n"


class SSEResponse(Response):
    """An ASGI response streaming a routed answer; ``on_close(self)`` runs once at the end."""

    media_type = "text/event-stream"

    def __init__(
        self,
        routed: RoutedChunks,
        *,
        headers: dict[str, str],
        timeout: float,
        started: float,
        on_close: Callable[[SSEResponse], None],
        deadlines: Deadlines | None = None,
    ):
        self.status_code = 200
        self.background = None
        self.init_headers({**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
        self.routed = routed
        self.state = StreamState.OPEN
        self.usage: Usage | None = None
        self.error_status: int | None = None
        self.first_chunk_at: float | None = None
        self.started = started
        self._timeout = timeout
        self._on_close = on_close
        self._deadlines = deadlines or Deadlines()
        self._disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self.state = StreamState.STREAMING
        # Plain asyncio, not an anyio task group: a group, its cancel scope and a deadline
        # scope cost ~9% of the CPU of a proxied stream (each anyio cancel formats a task repr).
        pumping = asyncio.current_task()
        watcher = asyncio.get_running_loop().create_task(self._watch_disconnect(receive, pumping))
        try:
            await self._pump_within_deadline(send)
        except asyncio.CancelledError:
            if self._disconnected and pumping is not None and pumping.uncancel() == 0:
                pass  # our own cancel: the client left
            else:  # from outside: the stopping server (gateway.cancellation)
                error = shutting_down()
                if self.state is StreamState.STREAMING and not self._disconnected:
                    await self._fail(send, error)
        finally:
            watcher.cancel()
            if self.state is StreamState.STREAMING:
                self.state = StreamState.CANCELLED
            await _shielded(self.routed.aclose())
            self._on_close(self)

    @property
    def status(self) -> int:
        """The status this answer is counted under: 200, the error's, or 499 (client left)."""
        if self.state is StreamState.FAILED:
            return self.error_status or 500
        return 499 if self.state is StreamState.CANCELLED else 200

    async def _watch_disconnect(self, receive: Receive, pumping: asyncio.Task | None) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.state is StreamState.STREAMING and pumping is not None:
            self._disconnected = True
            pumping.cancel()

    async def _pump_within_deadline(self, send: Send) -> None:
        remaining = self._timeout - (time.perf_counter() - self.started)
        try:
            await self._deadlines.run(remaining, self._pump(send))
        except TimeoutError:
            if self.state is StreamState.STREAMING:
                route = self.routed.decision.target
                await self._fail(
                    send, BackendTimeout(f"stream not finished within {self._timeout:g}s", backend=route)
                )

    async def _pump(self, send: Send) -> None:
        try:
            async for batch in self.routed.batches():  # what arrived together goes out in one write
                for chunk in batch:
                    if chunk.usage is not None:
                        self.usage = chunk.usage
                body = b"".join([chunk_event(chunk) for chunk in batch])
                await send({"type": "http.response.body", "body": body, "more_body": True})
                if self.first_chunk_at is None:
                    self.first_chunk_at = time.perf_counter()
        except BitrateError as exc:
            await self._fail(send, exc)
            return
        except Exception as exc:  # noqa: BLE001 - boundary: headers are out, only an event can tell the client
            log.error("internal error in a stream", exc_info=exc)
            await self._fail(send, InternalError("internal error in the bitrate gateway"))
            return
        self.state = StreamState.DONE
        await send({"type": "http.response.body", "body": DONE_EVENT, "more_body": False})

    async def _fail(self, send: Send, exc: BitrateError) -> None:
        self.state = StreamState.FAILED
        self.error_status = status_of(exc)
        await send({"type": "http.response.body", "body": error_event(exc), "more_body": False})
