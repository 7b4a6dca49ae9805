"""What the fault server knows of one request, and the bytes of good answers."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fault_server.server import FaultServer

DEFAULT_TEXT = "Hello from the fault server."


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    """``GET``, ``POST``..."""
    path: str
    """The request target, e.g. ``/v1/chat/completions``."""
    headers: dict[str, str]
    """Headers, names lower-cased."""
    body: bytes
    """The raw body."""

    @property
    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def route(self) -> str | None:
        """``chat``, ``models`` or ``None``."""
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/chat/completions"):
            return "chat"
        return "models" if path.endswith("/models") else None


@dataclass
class Exchange:
    """One request being answered: what a :class:`Fault` works with."""

    request: RecordedRequest
    """The request being answered."""
    reader: asyncio.StreamReader
    """The connection's read side (its EOF tells that the client went away)."""
    writer: asyncio.StreamWriter
    """The connection's write side."""
    server: FaultServer
    """The server, for its settings and records."""
    request_id: str
    """Sent back as ``x-request-id``."""

    @property
    def wants_stream(self) -> bool:
        """True when the body says ``"stream": true``."""
        body = self.request.json
        return isinstance(body, dict) and body.get("stream") is True

    @property
    def model(self) -> str:
        """The ``model`` the request named (echoed in answers)."""
        body = self.request.json
        return body.get("model", "fault-model") if isinstance(body, dict) else "fault-model"

    async def head(
        self,
        status: int,
        content_type: str,
        headers: dict[str, str] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        """Send the status line and headers; ``length=None`` means chunked."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
        lines.append(f"x-request-id: {self.request_id}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """A complete response with a ``content-length``."""
        await self.head(status, content_type, headers, length=len(body))
        self.writer.write(body)
        await self.writer.drain()

    async def chunk(self, data: bytes) -> bool:
        """One chunk of a chunked body; ``False`` (and recorded) when the client has gone."""
        if self.client_gone():
            self.server.record_client_gone(self.request)
            return False
        try:
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self.writer.drain()
        except ConnectionError:
            self.server.record_client_gone(self.request)
            return False
        return True

    async def end_chunks(self) -> None:
        """The zero-length chunk that ends a chunked body cleanly."""
        await self.chunk(b"")

    def client_gone(self) -> bool:
        """True once the client closed its side of the connection."""
        return self.reader.at_eof() or self.writer.is_closing()

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
_REASONS |= {503: "Service Unavailable", 504: "Gateway Timeout"}


def completion(model: str, text: str = DEFAULT_TEXT) -> dict[str, Any]:
    """A chat completion body answering ``text``."""
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": len(text.split()),
            "total_tokens": 5 + len(text.split()),
        },
        "system_fingerprint": "fp_fault",
    }


def stream_events(model: str, text: str = DEFAULT_TEXT, *, usage: bool = False) -> list[bytes]:
    """The SSE events of a streamed answer of ``text``, one word a chunk, ``[DONE]`` excluded."""
    base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    pieces = [{"role": "assistant", "content": ""}] + [{"content": w} for w in _words(text)]
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        n = len(pieces) - 1
        chunks.append(
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n},
            }
        )
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + words[-1:]


DONE_EVENT = b"data: [DONE]\n\n"
