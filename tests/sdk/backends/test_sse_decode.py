"""The SSE decoder over arbitrary network splits, and the OpenAI chunk stream built on it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdk.backends.sse_decode import SSEDecoder, SSEEvent, iter_chunk_batches, iter_chunks
from sdk.errors import BackendError, UpstreamStatusError


def decode(*chunks: bytes) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close()


def chunk_json(text: str, **extra) -> str:
    return json.dumps(
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}], **extra}
    )  # fmt: skip


async def source(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def collect(*chunks: bytes) -> list[str]:
    return [c.choices[0].delta.content async for c in iter_chunks(source(*chunks), "up")]


STREAM = (
    ": keep-alive comment\n\n"
    "event: message\nid: 7\ndata: first\n\n"
    "data: two\ndata: lines\n\n"
    "retry: 1500\ndata: héllo ✓\r\n\r\n"
    "data:no-space\rdata:  two-spaces\r\r"
    "unknown: field\nfield-without-colon\ndata\n\n"
).encode()

EXPECTED = [
    SSEEvent("first", "message", "7"),
    SSEEvent("two\nlines", "message", "7"),
    SSEEvent("héllo ✓", "message", "7", 1500),
    SSEEvent("no-space\n two-spaces", "message", "7"),
    SSEEvent("", "message", "7"),
]


def test_decoder_follows_the_event_stream_rules():
    assert decode(STREAM) == EXPECTED


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_across_reads_gives_the_same_events(cuts):
    """Lines, CRLF pairs and multi-byte characters split across reads change nothing."""
    bounds = [0, *sorted(cuts), len(STREAM)]
    assert decode(*(STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False))) == EXPECTED


def test_byte_by_byte_feed():
    assert decode(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == EXPECTED


def test_an_event_without_its_blank_line_is_discarded_at_the_end():
    assert decode(b"data: complete\n\ndata: cut short\n") == [SSEEvent("complete")]


def test_a_final_cr_ends_the_blank_line():
    assert decode(b"data: x\r", b"\r") == [SSEEvent("x")]


async def test_chunks_until_done_and_nothing_after():
    body = f"data: {chunk_json('a')}\n\n: ping\n\ndata: {chunk_json('b')}\n\ndata: [DONE]\n\ndata: junk\n\n"
    assert await collect(body.encode()) == ["a", "b"]


async def test_done_split_across_reads():
    body = f"data: {chunk_json('a')}\n\ndata: [DO".encode()
    assert await collect(body, b"NE]\n\n") == ["a"]


async def test_stream_without_done_is_truncated():
    body = f"data: {chunk_json('a')}\n\n".encode()
    got = []
    with pytest.raises(BackendError, match="stream truncated") as info:
        async for chunk in iter_chunks(source(body), "up"):
            got.append(chunk.choices[0].delta.content)
    assert got == ["a"]
    assert info.value.code == "stream_truncated"
    assert info.value.backend == "up"


async def test_error_payload_with_a_status_raises_upstream_status_error():
    error = json.dumps({"error": {"message": "overloaded", "code": 503}})
    body = f"data: {chunk_json('a')}\n\ndata: {error}\n\n".encode()
    with pytest.raises(UpstreamStatusError, match="overloaded") as info:
        await collect(body)
    assert info.value.upstream_status == 503


async def test_error_payload_without_status_raises_backend_error():
    body = b'event: error\ndata: {"message": "boom", "type": "server_error"}\n\n'
    with pytest.raises(BackendError, match="mid-stream: boom") as info:
        await collect(body)
    assert info.value.code == "upstream_stream_error"


@pytest.mark.parametrize(
    ("payload", "why"),
    [("{not json", "invalid JSON"), ('{"id": "c1"}', "not a chat completion chunk")],
)
async def test_bad_payload_is_a_malformed_response(payload, why):
    with pytest.raises(BackendError, match=f"malformed response: {why}") as info:
        await collect(f"data: {payload}\n\n".encode())
    assert info.value.code == "bad_upstream_response"


async def test_unknown_chunk_fields_survive():
    body = f"data: {chunk_json('a', service_tier='flex')}\n\ndata: [DONE]\n\n".encode()
    chunks = [c async for c in iter_chunks(source(body), "up")]
    assert chunks[0].model_extra == {"service_tier": "flex"}


async def test_batches_keep_the_chunks_of_one_read_together():
    one_read = f"data: {chunk_json('a')}\n\ndata: {chunk_json('b')}\n\n".encode()
    split = f"data: {chunk_json('c')}\n\nda".encode(), f"ta: {chunk_json('d')}\n\ndata: [DONE]\n\n".encode()
    batches = [
        [c.choices[0].delta.content for c in batch]
        async for batch in iter_chunk_batches(source(one_read, *split), "up")
    ]
    assert batches == [["a", "b"], ["c"], ["d"]]


async def test_an_error_event_comes_after_the_good_chunks_of_its_read():
    read = f'data: {chunk_json("a")}\n\ndata: {{"error": {{"message": "boom"}}}}\n\n'.encode()
    seen: list[str] = []
    with pytest.raises(BackendError, match="boom"):
        async for batch in iter_chunk_batches(source(read), "up"):
            seen += [c.choices[0].delta.content for c in batch]
    assert seen == ["a"]
