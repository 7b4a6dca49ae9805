"""Server-sent events: an incremental decoder, and the OpenAI chunk stream built on it.

:class:`SSEDecoder` is a small state machine fed raw byte chunks exactly as they
arrive from the network; a line, a UTF-8 character or a ``\\r\\n`` may be split
across two reads. It follows the WHATWG event-stream rules: lines end in
``\\n``, ``\\r\\n`` or ``\\r``; ``:`` starts a comment; ``data:`` lines of one
event are joined with ``\\n``; a blank line dispatches the event; an event still
open when the stream ends is discarded.

:func:`iter_chunk_batches` turns an OpenAI stream into chunks, grouped by the network
read they came in (:func:`iter_chunks`: one at a time): every ``data`` payload is
one :class:`~sdk.protocol.ChatCompletionChunk`, ``[DONE]`` ends it, an ``error``
payload raises, and a stream that ends without ``[DONE]`` raises
``BackendError`` "stream truncated" (code ``stream_truncated``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import NamedTuple

from sdk.backends.base import flatten
from sdk.backends.openai_wire import parse_chunk
from sdk.errors import BackendError
from sdk.protocol import ChatCompletionChunk

__all__ = ["DONE", "SSEDecoder", "SSEEvent", "iter_chunk_batches", "iter_chunks"]

DONE = "[DONE]"
"""The data payload that ends an OpenAI stream."""


class SSEEvent(NamedTuple):
    """One dispatched event (a named tuple: a frozen dataclass cost ~1.5 us to build)."""

    data: str
    """The ``data`` lines joined with ``\\n``."""
    event: str = "message"
    """The ``event`` field (``message`` when absent)."""
    id: str | None = None
    """The last ``id`` field seen (sticky across events, as the spec says)."""
    retry: int | None = None
    """A ``retry`` field of this event, in milliseconds."""


class SSEDecoder:
    """Incremental event-stream decoder: ``feed`` bytes, get the events they complete.

    Works on bytes (UTF-8 is decoded per finished event: a ``\n`` or ``\r`` byte is never
    part of a multi-byte character, so a character split across reads is safe); a chunk
    without ``\r`` takes one ``split`` and no regular expression (~5x cheaper per event)."""

    def __init__(self) -> None:
        self._pending = b""  # an unfinished line (or a lone trailing "\r")
        self._data: list[bytes] = []
        self._event = ""
        self._retry: int | None = None
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk``; return the events whose blank line it completed."""
        text = self._pending + chunk
        held = b""
        if b"\r" in text:
            if text.endswith(b"\r"):  # may be the first half of "\r\n": keep it for the next read
                text, held = text[:-1], b"\r"
            text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = text.split(b"\n")
        self._pending = lines.pop() + held
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a final ``\\r`` ends its line; an undispatched event is dropped."""
        text, self._pending = self._pending, b""
        if text.endswith(b"\r"):
            text = text[:-1] + b"\n"
        lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")[:-1]
        events = [self._line(line) for line in lines]
        return [e for e in events if e is not None]

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b"data:"):  # nearly every line: skip the general parse
            self._data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            return None
        if line.startswith(b":"):
            return None  # comment (keep-alive pings)
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")
        elif name == b"id" and b"\0" not in value:
            self._last_id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None  # unknown fields are ignored, as the spec says

    def _dispatch(self) -> SSEEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", errors="replace")
        return SSEEvent(text, event or "message", self._last_id, retry)


async def iter_chunk_batches(
    source: AsyncIterable[bytes], backend: str, *, secret: str | None = None
) -> AsyncIterator[list[ChatCompletionChunk]]:
    """The chunks of an OpenAI stream read from ``source`` (raw body bytes), a list per read:
    the chunks that arrived together stay together, so a proxy can forward them in one write.
    ``secret`` (the API key) is redacted from any error event the upstream sends.

    Stops at ``[DONE]`` without reading further; the caller closes the source. An error event
    raises after the good chunks of the same read were yielded.
    """
    decoder = SSEDecoder()
    async for events in _events_per_read(source, decoder):
        batch: list[ChatCompletionChunk] = []
        try:
            done = _parse_into(batch, events, backend, secret)
        except BackendError:
            if batch:
                yield batch
            raise
        if batch:
            yield batch
        if done:
            return
    raise BackendError("stream truncated: it ended without [DONE]", backend=backend, code="stream_truncated")


async def _events_per_read(
    source: AsyncIterable[bytes], decoder: SSEDecoder
) -> AsyncIterator[list[SSEEvent]]:
    """The events each read of ``source`` completes, then those the end of the stream completes."""
    async for raw in source:
        yield decoder.feed(raw)
    yield decoder.close()


def _parse_into(
    batch: list[ChatCompletionChunk], events: list[SSEEvent], backend: str, secret: str | None
) -> bool:
    """Append the chunks of ``events`` to ``batch``; True when ``[DONE]`` came (the rest is ignored)."""
    for event in events:
        if event.data.strip() == DONE:
            return True
        batch.append(parse_chunk(event.data, backend, event=event.event, secret=secret))
    return False


def iter_chunks(
    source: AsyncIterable[bytes], backend: str, *, secret: str | None = None
) -> AsyncIterator[ChatCompletionChunk]:
    """:func:`iter_chunk_batches`, one chunk at a time."""
    return flatten(iter_chunk_batches(source, backend, secret=secret))
