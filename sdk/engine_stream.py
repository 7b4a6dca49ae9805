"""Streaming for the engine: open a backend stream far enough to know it works, or buffer it whole.

Two ways to start a routed stream, both finished before the caller sees a byte,
so any failure up to that point can still fall back or map to an HTTP status:

- ``open_stream``: pull the first chunk (pass-through streaming);
- ``buffer_stream``: pull every chunk (the answer must pass a check first).

A :class:`RoutedStream` then hands out the chunks. Its states:

``ready`` -> ``streaming`` -> ``done`` (the backend's stream ended)
                          \\-> ``closed`` (``aclose()``: the backend's generation is cancelled)

Every chunk is forwarded as it arrives (holding one back would delay the first token
by one inter-token gap). ``bitrate`` rides on the chunk that ends the answer: the
usage chunk when the request asked for one, else the chunk on which the last choice
got its ``finish_reason``. A stream that ends without such a chunk gets one extra
final chunk (no choices) carrying ``bitrate``.

A failure after the first chunk raises the backend's ``BackendError`` from the iterator.

A :class:`StreamTap` set as ``stream.tap`` sees every batch as it is sent, and ``done()`` once
the stream reached ``done`` (never for a failed or closed one): the live runtime assembles a
sampled answer there for its shadow job, after the caller has had every chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Literal, Protocol

from sdk.backends.base import Backend, close_iterator, flatten, singletons
from sdk.decision import Decision
from sdk.errors import InternalError
from sdk.protocol import ChatCompletionChunk, ChatRequest

__all__ = ["RoutedStream", "StreamTap", "buffer_stream", "chunk_texts", "open_stream"]

State = Literal["ready", "streaming", "done", "closed"]


class StreamTap(Protocol):
    """Watches a routed stream (see the module docstring)."""

    def batch(self, chunks: Sequence[ChatCompletionChunk]) -> None:
        """Chunks about to be sent to the caller."""
        ...

    def done(self) -> None:
        """The stream ended well (the caller has every chunk)."""
        ...


async def open_stream(
    backend: Backend, request: ChatRequest
) -> tuple[list[ChatCompletionChunk], AsyncIterator[list[ChatCompletionChunk]] | None]:
    """Start ``backend``'s stream and pull its first batch (the chunks of the first read):
    ``(first, rest)`` with ``rest`` the later batches, or ``([], None)`` for an empty stream.
    A failure before the first chunk raises here (and closes the stream)."""
    iterator = aiter(backend.stream_batches(request))
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return [], None
    except BaseException:
        await close_iterator(iterator)
        raise
    return first, iterator


async def buffer_stream(backend: Backend, request: ChatRequest) -> list[ChatCompletionChunk]:
    """Every chunk of ``backend``'s stream, held back so the whole answer can be checked."""
    iterator = aiter(backend.stream(request))
    try:
        return [chunk async for chunk in iterator]
    finally:
        await close_iterator(iterator)


def _meta_chunk(last: ChatCompletionChunk, decision: Decision) -> ChatCompletionChunk:
    """The extra final chunk (no choices) that carries ``bitrate`` when no chunk ended the answer."""
    chunk = ChatCompletionChunk(id=last.id, created=last.created, model=last.model, choices=[])
    setattr(chunk, "bitrate", decision.to_meta())  # noqa: B010 - an extra field; as assignment, marks it set
    return chunk


def chunk_texts(chunks: Sequence[ChatCompletionChunk]) -> list[str]:
    """The text of each choice, joined from the chunks' deltas (tool-call arguments count as text)."""
    texts: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            parts = texts.setdefault(choice.index, [])
            parts.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                parts.append(str((call.get("function") or {}).get("arguments") or ""))
    return ["".join(texts[i]) for i in sorted(texts)] or [""]


class RoutedStream:
    """A routed streaming answer. ``decision`` is final; ``async for chunk in stream`` yields the
    chunks as they arrive, one of them carrying ``bitrate`` (``decision.to_meta()``, see above);
    ``stream.batches()`` yields the same chunks grouped as they arrived (``head`` first).

    ``tail`` is the rest of the stream chunk by chunk, or ``batches`` the rest as lists of
    chunks (what :func:`open_stream` returns). ``choices`` is how many choices the request
    asked for (``n``); ``usage`` whether it asked for a final usage chunk
    (``stream_options.include_usage``)."""

    def __init__(
        self,
        decision: Decision,
        head: Sequence[ChatCompletionChunk],
        tail: AsyncIterator[ChatCompletionChunk] | None = None,
        *,
        batches: AsyncIterator[list[ChatCompletionChunk]] | None = None,
        choices: int = 1,
        usage: bool = False,
    ):
        self.decision = decision
        """Where the answer comes from and why."""
        self._head = list(head)
        if batches is None and tail is not None:
            batches = singletons(tail)
        self._tail = batches
        self._gens: list[AsyncGenerator[Any, None]] = []
        self._choices = choices
        self._usage = usage
        self._finished: set[int] = set()
        self.state: State = "ready"
        """``ready``, ``streaming``, ``done`` or ``closed``."""
        self.tap: StreamTap | None = None
        """Sees the batches and the end of a stream that ended well (see the module docstring)."""

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        if not self._gens:
            batches = self._iterate()
            self._gens = [batches, flatten(batches)]
        return self._gens[-1]

    def batches(self) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The chunks, a list per arrival (iterate either this or the stream itself, once)."""
        if not self._gens:
            self._gens = [self._iterate()]
        return self._gens[0]

    async def _raw_batches(self) -> AsyncIterator[list[ChatCompletionChunk]]:
        head, self._head = self._head, []
        if head:
            yield head
        if self._tail is not None:
            async for batch in self._tail:
                yield batch

    def _ends_answer(self, chunk: ChatCompletionChunk) -> bool:
        """True for the chunk ``bitrate`` rides on (see the module docstring)."""
        if self._usage:
            return chunk.usage is not None
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self._finished.add(choice.index)
        return len(self._finished) >= self._choices

    async def _iterate(self) -> AsyncGenerator[list[ChatCompletionChunk], None]:
        if self.state != "ready":
            raise InternalError(f"a routed stream can be iterated once (state: {self.state})")
        self.state = "streaming"
        tagged, last = False, None
        try:
            async for batch in self._raw_batches():
                if not tagged:
                    for chunk in batch:
                        if self._ends_answer(chunk):
                            chunk.set_extra("bitrate", self.decision.to_meta())
                            tagged = True
                            break
                last = batch[-1]
                if self.tap is not None:
                    self.tap.batch(batch)
                yield batch
        finally:
            await self._finish()
        if last is not None and not tagged:
            yield [_meta_chunk(last, self.decision)]
        if self.tap is not None and self.state == "done":
            self.tap.done()

    async def _finish(self) -> None:
        tail, self._tail = self._tail, None
        if self.state == "streaming":
            self.state = "done"
        await close_iterator(tail)

    async def aclose(self) -> None:
        """Stop: cancel the backend's generation and drop what is left."""
        self._head = []
        self.state = "closed"
        gens, self._gens = self._gens, []
        for gen in reversed(gens):  # the flattening one first: it iterates the other
            await gen.aclose()
        await self._finish()

    async def __aenter__(self) -> RoutedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
