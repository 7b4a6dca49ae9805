"""Streaming through the openai backend: retries only before the first chunk, failures after it raise."""

from __future__ import annotations

import asyncio

import pytest

from sdk.errors import BackendError, BackendTimeout, UpstreamStatusError
from sdk.protocol import ChatCompletionChunk
from tests.sdk.backends.test_openai_http import chat
from tests.support.fault_server import (
    Drip,
    Drop,
    Hang,
    Ok,
    Status,
    StreamError,
    Truncated,
    WrongContentType,
)
from tests.support.fault_server.exchange import DEFAULT_TEXT


def text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def drain(backend, request, into: list[ChatCompletionChunk]) -> None:
    async for chunk in backend.stream(request):
        into.append(chunk)


async def test_stream_yields_the_answer_and_a_usage_chunk(backend, server):
    chunks: list[ChatCompletionChunk] = []
    await drain(backend, chat(stream_options={"include_usage": True}), chunks)
    assert text(chunks) == DEFAULT_TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    [seen] = server.chat_requests
    assert seen.json["stream"] is True and seen.json["stream_options"] == {"include_usage": True}
    assert seen.headers["accept"] == "text/event-stream"


async def test_failures_before_the_first_chunk_are_retried(backend, server):
    server.script(Status(503, retry_after=0), Drop())
    chunks: list[ChatCompletionChunk] = []
    await drain(backend, chat(), chunks)
    assert text(chunks) == DEFAULT_TEXT
    assert len(server.chat_requests) == 3


async def test_status_errors_raise_before_any_chunk(backend, server):
    server.script(Status(404, message="model not found"))
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(UpstreamStatusError, match="model not found") as info:
        await drain(backend, chat(), chunks)
    assert chunks == [] and info.value.upstream_status == 404
    assert len(server.chat_requests) == 1


async def test_a_non_sse_answer_is_malformed(backend, server):
    server.script(WrongContentType())
    with pytest.raises(BackendError, match="expected text/event-stream"):
        await drain(backend, chat(), [])
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize("close", [False, True], ids=["ends", "closes"])
async def test_truncated_stream_raises_after_partial_chunks_without_retry(backend, server, close):
    server.script(Truncated(chunks=3, close=close))
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(BackendError) as info:
        await drain(backend, chat(), chunks)
    assert len(chunks) == 3
    expected = "connection lost" if close else "stream truncated"
    assert expected in str(info.value)
    assert len(server.chat_requests) == 1


async def test_error_event_mid_stream(backend, server):
    server.script(StreamError(after=2, error={"message": "engine overloaded", "code": 503}))
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(UpstreamStatusError, match="engine overloaded"):
        await drain(backend, chat(), chunks)
    assert len(chunks) == 2
    assert len(server.chat_requests) == 1


async def test_stall_between_chunks_times_out_without_retry(backend, server):
    server.script(Drip(delay=5))
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(BackendTimeout):
        await asyncio.wait_for(drain(backend, chat(), chunks), timeout=4)
    assert len(chunks) == 1
    assert len(server.chat_requests) == 1


async def test_hang_before_headers_is_retried_once(backend, server):
    server.script(Hang(10), Ok(text="second try"))
    chunks: list[ChatCompletionChunk] = []
    await drain(backend, chat(), chunks)
    assert text(chunks) == "second try"


async def test_closing_early_closes_the_upstream_response(backend, server):
    server.script(Drip(delay=0.1, text="a long answer that the caller will not wait for"))
    stream = backend.stream(chat())
    first = await anext(stream)
    assert first.choices[0].delta.role == "assistant"
    await stream.aclose()
    assert await asyncio.to_thread(server.client_gone.wait, 5)
    assert server.streams_abandoned == server.chat_requests


async def test_an_unstarted_stream_sends_nothing(backend, server):
    stream = backend.stream(chat())
    await stream.aclose()
    assert server.chat_requests == []


async def test_a_finished_stream_gives_its_connection_back(backend, server):
    # [DONE] and the chunked body's terminator come apart (Drip pauses between them): the
    # backend reads the terminator instead of dropping the connection after [DONE].
    server.script(*[Drip(delay=0.02, text="three short words") for _ in range(3)])
    for _ in range(3):
        chunks: list[ChatCompletionChunk] = []
        await drain(backend, chat(), chunks)
        assert text(chunks) == "three short words"
    assert server.connections == 1
