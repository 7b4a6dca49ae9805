"""The SSE state machine, driven directly over ASGI with the engine's real ``RoutedStream``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from gateway.sse_response import DONE_EVENT, SSEResponse, StreamState
from sdk.decision import Decision
from sdk.engine_stream import RoutedStream
from sdk.errors import BackendUnavailable
from sdk.protocol import ChatCompletionChunk, ChunkChoice, Delta, Usage

DECISION = Decision(route="auto", target="student", side="student", task="copy", reason="safe")


def _chunk(text: str | None = None, usage: Usage | None = None) -> ChatCompletionChunk:
    choices = [ChunkChoice(delta=Delta(content=text))] if text is not None else []
    return ChatCompletionChunk(id="c1", model="m", choices=choices, usage=usage)


class Tail:
    """A backend stream: yields ``texts`` (``gap`` seconds apart), then optionally fails."""

    def __init__(self, texts: list[str], *, fail: bool = False, gap: float = 0.0):
        self.texts, self.fail, self.gap = texts, fail, gap
        self.closed = False

    async def __call__(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            for text in self.texts:
                await asyncio.sleep(self.gap)
                yield _chunk(text)
            if self.fail:
                raise BackendUnavailable("connection reset", backend="student")
            yield _chunk(usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
        finally:
            self.closed = True


async def _run(tail: Tail, *, disconnect_after: float | None = None, timeout: float = 30.0):
    routed = RoutedStream(DECISION, [_chunk("first")], tail())
    closed: list[SSEResponse] = []
    response = SSEResponse(
        routed, headers={}, timeout=timeout, started=time.perf_counter(), on_close=closed.append
    )
    sent: list[dict] = []

    async def receive() -> dict:
        if disconnect_after is None:
            await asyncio.Event().wait()
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return response, closed, sent, body


async def test_clean_stream_is_done_with_usage():
    tail = Tail(["a", "b"])
    response, closed, sent, body = await _run(tail)
    assert response.state is StreamState.DONE and response.status == 200
    assert body.endswith(DONE_EVENT) and sent[-1]["more_body"] is False
    events = [json.loads(e[6:]) for e in body.decode().split("\n\n") if e and e != "data: [DONE]"]
    assert [e["choices"][0]["delta"]["content"] for e in events[:3]] == ["first", "a", "b"]
    assert events[-1]["bitrate"]["task"] == "copy"
    assert response.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    assert closed == [response] and tail.closed and response.first_chunk_at is not None


async def test_failure_mid_stream_is_an_error_event_without_done():
    tail = Tail(["a"], fail=True)
    response, closed, sent, body = await _run(tail)
    assert response.state is StreamState.FAILED and response.status == 503
    last = body.decode().strip().split("\n\n")[-1]
    assert json.loads(last[len("data: ") :])["error"]["code"] == "backend_unavailable"
    assert b"[DONE]" not in body and sent[-1]["more_body"] is False
    assert closed == [response] and tail.closed


async def test_disconnect_cancels_the_backend_stream():
    tail = Tail(["a"] * 100, gap=0.05)
    response, closed, _sent, body = await _run(tail, disconnect_after=0.2)
    assert response.state is StreamState.CANCELLED and response.status == 499
    assert tail.closed and closed == [response]
    assert b"[DONE]" not in body and body.count(b"data: ") < 100


async def test_deadline_ends_the_stream_with_a_timeout_event():
    tail = Tail(["a"] * 100, gap=0.05)
    response, _closed, _sent, body = await _run(tail, timeout=0.2)
    assert response.state is StreamState.FAILED and response.status == 504
    assert b'"timeout_error"' in body and b"[DONE]" not in body and tail.closed


async def test_chunks_that_arrived_together_go_out_in_one_write():
    async def batches() -> AsyncIterator[list[ChatCompletionChunk]]:
        yield [_chunk("b"), _chunk("c"), _chunk("d")]
        yield [_chunk(usage=Usage(prompt_tokens=1, completion_tokens=3, total_tokens=4))]

    routed = RoutedStream(DECISION, [_chunk("a")], batches=batches(), usage=True)
    response = SSEResponse(
        routed, headers={}, timeout=30.0, started=time.perf_counter(), on_close=lambda r: None
    )
    sent: list[dict] = []

    async def receive() -> dict:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict) -> None:
        sent.append(message)

    await response({"type": "http"}, receive, send)
    bodies = [m["body"] for m in sent[1:]]
    assert [b.count(b"data: ") for b in bodies] == [1, 3, 1, 1]  # a | b c d | usage | [DONE]
    assert json.loads(bodies[2][len("data: ") :])["bitrate"]["route"] == "auto"
    assert response.usage is not None and response.usage.completion_tokens == 3
