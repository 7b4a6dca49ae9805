"""The one backend interface: complete, stream, health, close.

A backend serves one model. It takes a validated :class:`~sdk.protocol.ChatRequest`
and answers with wire objects, raising only :mod:`sdk.errors` classes:
``RequestError`` when the request cannot be served by this backend (e.g. an
image part for a text-only local model), ``BackendError`` subclasses when the
backend fails. ``stream`` yields chunks; once the first chunk is out, a failure
raises from the iterator and is never retried. ``stream_batches`` groups the same
chunks by arrival.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator

from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest

__all__ = ["Backend", "close_iterator", "flatten", "singletons"]


async def close_iterator(iterator: AsyncIterator | None) -> None:
    """``aclose()`` an async iterator that has one (generators do; plain iterators need not)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def singletons(chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[list[ChatCompletionChunk]]:
    """A chunk-by-chunk stream as batches of one; closing it closes ``chunks``."""
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await close_iterator(chunks)


async def flatten(
    batches: AsyncIterator[list[ChatCompletionChunk]],
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """Batches of chunks one chunk at a time; closing it closes ``batches``."""
    try:
        async for batch in batches:
            for chunk in batch:
                yield chunk
    finally:
        await close_iterator(batches)


class Backend(abc.ABC):
    """A chat-completion backend serving one model."""

    name: str
    """The model's name in the policy (used in errors and metadata)."""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatCompletion:
        """Answer ``request`` in one piece (``request.stream`` is ignored)."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ChatCompletionChunk]:
        """Answer ``request`` as chunks. With ``stream_options.include_usage`` the
        last chunk carries ``usage`` and no choices."""

    def stream_batches(self, request: ChatRequest) -> AsyncIterator[list[ChatCompletionChunk]]:
        """:meth:`stream`'s chunks grouped as they arrived (a list per network read), so a
        proxy can forward what came together in one write. Here one chunk a list; HTTP
        backends override it. Closing it closes the stream."""
        return singletons(self.stream(request))

    @abc.abstractmethod
    async def health(self) -> bool:
        """True when the backend can serve now. Never raises."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections, threads and memory."""

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
