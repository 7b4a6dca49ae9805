"""The streams ``sdk.Client`` and ``sdk.AsyncClient`` return, and what a call and its stream share:
the bound on waiting (``timeout=``), the errors as the ``openai`` client's (``sdk.openai_compat``),
and the event loop the blocking client runs on.

A stream's ``timeout`` bounds each wait for the next chunk, as the official client's read timeout
does; its span (``sdk.tracing``) ends with the stream: exhausted, closed, or failed.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Any, NoReturn, TypeVar

from sdk.decision import Decision
from sdk.engine_stream import RoutedStream
from sdk.errors import BackendTimeout, BitrateError
from sdk.openai_compat import openai_error
from sdk.protocol import ChatCompletionChunk
from sdk.tracing import RequestSpan, chunks_attributes

__all__ = ["AsyncStream", "BackgroundLoop", "Stream", "raise_as_openai", "within"]

T = TypeVar("T")


async def within(call: Awaitable[T], seconds: float | None, model: str) -> T:
    """``call``, given ``seconds`` at most (``None``: no bound); past them, a ``BackendTimeout``."""
    if seconds is None:
        return await call
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError as exc:
        raise BackendTimeout(f"no answer within timeout={seconds:g}s", backend=model) from exc


def raise_as_openai(exc: BitrateError, request_id: str | None) -> NoReturn:
    """Raise ``exc`` as the ``openai`` client's exception (``sdk.openai_compat.openai_error``);
    call it from the ``except`` block that caught ``exc``."""
    err = openai_error(exc, request_id)
    if err is exc:
        raise exc
    raise err from exc


class AsyncStream:
    """A streaming answer: ``async for chunk in stream``; ``stream.bitrate`` is the decision."""

    def __init__(
        self,
        routed: RoutedStream,
        *,
        timeout: float | None = None,
        request_id: str | None = None,
        span: RequestSpan | None = None,
    ):
        self._routed = routed
        self._timeout, self._request_id, self._span = timeout, request_id, span
        self._seen: list[ChatCompletionChunk] = []
        self.bitrate: Decision = routed.decision
        """Where the answer comes from and why."""

    async def __aiter__(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        error: BitrateError | None = None
        try:
            async for chunk in self._chunks():
                if "bitrate" in (chunk.model_extra or {}):
                    setattr(chunk, "bitrate", self.bitrate)  # noqa: B010 - an extra field; as assignment, marks it set
                if self._span is not None and (chunk.usage or not self._seen or _finishes(chunk)):
                    self._seen.append(chunk)
                yield chunk
        except BitrateError as exc:
            error = exc
            raise_as_openai(exc, self._request_id)
        finally:
            self._end_span(error)

    def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        return aiter(self._routed) if self._timeout is None else self._each_within()

    async def _each_within(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        iterator = aiter(self._routed)
        while True:
            try:
                chunk = await within(anext(iterator), self._timeout, self.bitrate.route)
            except StopAsyncIteration:
                return
            yield chunk

    def _end_span(self, error: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is not None:
            span.end(self.bitrate, attributes=chunks_attributes(self._seen), error=error)

    async def close(self) -> None:
        """Stop early and cancel the generation."""
        await self._routed.aclose()
        self._end_span(None)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _finishes(chunk: ChatCompletionChunk) -> bool:
    return any(choice.finish_reason for choice in chunk.choices)


class BackgroundLoop:
    """An event loop running in a daemon thread; ``run`` executes a coroutine on it and waits, in a
    copy of the caller's context (its trace, its request id)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bitrate-client", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        context = contextvars.copy_context()
        return context.run(asyncio.run_coroutine_threadsafe, coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Stream:
    """A streaming answer: ``for chunk in stream``; ``stream.bitrate`` is the decision."""

    def __init__(self, inner: AsyncStream, loop: BackgroundLoop):
        self._inner, self._loop = inner, loop
        self._iter = aiter(inner)
        self.bitrate: Decision = inner.bitrate
        """Where the answer comes from and why."""

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        while True:
            try:
                yield self._loop.run(anext(self._iter))
            except StopAsyncIteration:
                return

    def close(self) -> None:
        """Stop early and cancel the generation."""
        self._loop.run(self._inner.close())

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
