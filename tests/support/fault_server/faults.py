"""The scripted behaviours: one :class:`Fault` answers one request."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.support.fault_server.exchange import (
    DEFAULT_TEXT,
    DONE_EVENT,
    Exchange,
    completion,
    stream_events,
)


class Fault:
    """How the server answers one request. ``respond`` returns True to keep the connection."""

    async def respond(self, ex: Exchange) -> bool:
        raise NotImplementedError


@dataclass
class Ok(Fault):
    """A good answer: a completion of ``text``, or its SSE stream when the request streams."""

    text: str = DEFAULT_TEXT
    headers: dict[str, str] = field(default_factory=dict)

    async def respond(self, ex: Exchange) -> bool:
        if ex.request.route == "models":
            body = {
                "object": "list",
                "data": [{"id": ex.server.model_id, "object": "model", "owned_by": "fault"}],
            }
            await ex.send(200, json.dumps(body).encode(), "application/json", self.headers)
        elif ex.wants_stream:
            usage = bool(((ex.request.json or {}).get("stream_options") or {}).get("include_usage"))
            await ex.head(200, "text/event-stream", self.headers)
            for event in [*stream_events(ex.model, self.text, usage=usage), DONE_EVENT]:
                if not await ex.chunk(event):
                    return False
            await ex.end_chunks()
        else:
            await ex.send(
                200, json.dumps(completion(ex.model, self.text)).encode(), "application/json", self.headers
            )
        return True


@dataclass
class Status(Fault):
    """An error status with an OpenAI error body (or ``body`` as given) and optional ``Retry-After``."""

    status: int
    message: str = "scripted failure"
    retry_after: str | float | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    async def respond(self, ex: Exchange) -> bool:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(self.retry_after)
        error = {"message": self.message, "type": "scripted_error", "param": None, "code": str(self.status)}
        body = self.body if self.body is not None else json.dumps({"error": error}).encode()
        await ex.send(self.status, body, "application/json", headers)
        return True


@dataclass
class Hang(Fault):
    """Read the request, then answer nothing for ``seconds`` (past the client's timeout), then close."""

    seconds: float = 30.0

    async def respond(self, ex: Exchange) -> bool:
        await asyncio.sleep(self.seconds)
        return False


@dataclass
class Stall(Fault):
    """Read the request, then answer nothing until the client closes the connection, recorded in
    ``server.streams_abandoned`` (and ``client_gone``), or until ``seconds`` pass."""

    seconds: float = 30.0

    async def respond(self, ex: Exchange) -> bool:
        try:
            async with asyncio.timeout(self.seconds):
                await ex.reader.read(1)  # b"" at the client's FIN
        except TimeoutError:
            return False
        except ConnectionError:
            pass  # reset by the client: gone as well
        ex.server.record_client_gone(ex.request)
        return False


@dataclass
class Drop(Fault):
    """Close the connection without answering: a FIN, or a RST with ``reset=True``."""

    reset: bool = False

    async def respond(self, ex: Exchange) -> bool:
        if self.reset:
            ex.reset()
        return False


@dataclass
class ResetMidBody(Fault):
    """Promise a JSON body, send ``sent`` bytes of it, then reset the connection."""

    sent: int = 20

    async def respond(self, ex: Exchange) -> bool:
        body = json.dumps(completion(ex.model)).encode()
        await ex.head(200, "application/json", length=len(body))
        ex.writer.write(body[: self.sent])
        await ex.writer.drain()
        await asyncio.sleep(0.05)  # let the partial body reach the client first
        ex.reset()
        return False


@dataclass
class Malformed(Fault):
    """A 200 ``application/json`` whose body is not JSON (or ``body`` as given)."""

    body: bytes = b'{"id": "chatcmpl-x", "choices": [ {oops'

    async def respond(self, ex: Exchange) -> bool:
        await ex.send(200, self.body, "application/json")
        return True


@dataclass
class WrongContentType(Fault):
    """A 200 ``text/html`` page, as a captive portal or a misrouted proxy answers."""

    async def respond(self, ex: Exchange) -> bool:
        await ex.send(200, b"<html><body>Welcome to the proxy</body></html>", "text/html")
        return True


@dataclass
class Truncated(Fault):
    """SSE: ``chunks`` good events, then the body ends (cleanly, or by a close) without ``[DONE]``."""

    chunks: int = 2
    close: bool = False

    async def respond(self, ex: Exchange) -> bool:
        await ex.head(200, "text/event-stream")
        for event in stream_events(ex.model)[: self.chunks]:
            await ex.chunk(event)
        if self.close:
            return False
        await ex.end_chunks()
        return True


@dataclass
class Drip(Fault):
    """SSE: every event ``delay`` seconds apart (a slow upstream, or a stall between chunks)."""

    delay: float = 0.2
    text: str = DEFAULT_TEXT

    async def respond(self, ex: Exchange) -> bool:
        await ex.head(200, "text/event-stream")
        for event in [*stream_events(ex.model, self.text), DONE_EVENT]:
            if not await ex.chunk(event):
                return False
            await asyncio.sleep(self.delay)
        await ex.end_chunks()
        return True


@dataclass
class StreamError(Fault):
    """SSE: ``after`` good events, then ``data: {"error": {...}}`` and the end of the stream."""

    after: int = 2
    error: dict[str, Any] = field(
        default_factory=lambda: {"message": "engine overloaded", "type": "server_error"}
    )

    async def respond(self, ex: Exchange) -> bool:
        await ex.head(200, "text/event-stream")
        for event in stream_events(ex.model)[: self.after]:
            await ex.chunk(event)
        await ex.chunk(b"data: " + json.dumps({"error": self.error}).encode() + b"\n\n")
        await ex.end_chunks()
        return True


@dataclass
class BadChunkSize(Fault):
    """A chunked 200 that breaks with a chunk-size line that is not hex: after ``events`` good SSE
    events (or the first bytes of the JSON body, for a non-streaming request), ``pause`` seconds
    later (so the bad line comes in a read of its own), then silence for ``hold`` seconds on an
    open connection, then close (and set ``closed``)."""

    events: int = 2
    pause: float = 0.1
    hold: float = 10.0
    closed: threading.Event = field(default_factory=threading.Event)

    async def respond(self, ex: Exchange) -> bool:
        if ex.wants_stream:
            await ex.head(200, "text/event-stream")
            for event in stream_events(ex.model)[: self.events]:
                await ex.chunk(event)
        else:
            await ex.head(200, "application/json")
            await ex.chunk(json.dumps(completion(ex.model)).encode()[:20])
        await asyncio.sleep(self.pause)
        ex.writer.write(b"zz-not-hex\r\n")
        await ex.writer.drain()
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.closed.set()
        return False


@dataclass
class Raw(Fault):
    """Send ``data`` as the whole response, verbatim, then close."""

    data: bytes

    async def respond(self, ex: Exchange) -> bool:
        ex.writer.write(self.data)
        await ex.writer.drain()
        return False
