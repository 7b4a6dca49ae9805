"""The routed stream's state machine, on plain async generators standing in for a backend's stream."""

from __future__ import annotations

import pytest

from sdk.decision import Decision
from sdk.engine_stream import RoutedStream, chunk_texts
from sdk.errors import BackendTimeout, InternalError
from sdk.protocol import ChatCompletionChunk

DECISION = Decision(route="auto", target="student", side="student", task="copy", rule="verdict")


def chunk(text: str | None = None, index: int = 0, **delta) -> ChatCompletionChunk:
    choice = {"index": index, "delta": {"content": text, **delta}}
    return ChatCompletionChunk.model_validate({"id": "c1", "model": "m", "choices": [choice]})


class Tail:
    """An async generator of chunks that records whether it was closed, optionally failing midway."""

    def __init__(self, texts, fail_after: int | None = None):
        self.texts, self.fail_after, self.closed = texts, fail_after, False

    async def gen(self):
        try:
            for i, text in enumerate(self.texts):
                if i == self.fail_after:
                    raise BackendTimeout("no chunk within 1s", backend="student")
                yield chunk(text)
        finally:
            self.closed = True


async def test_states_and_the_last_chunk_carries_the_decision():
    tail = Tail(["b", "c"])
    routed = RoutedStream(DECISION, [chunk("a")], tail.gen())
    assert routed.state == "ready"
    seen, states = [], []
    async for c in routed:
        seen.append(c)
        states.append(routed.state)
    assert states == ["streaming", "streaming", "done"]  # done once the backend's stream ended
    assert [c.choices[0].delta.content for c in seen] == ["a", "b", "c"]
    assert seen[-1].model_extra["bitrate"] == DECISION.to_meta()
    assert [("bitrate" in c.model_extra) for c in seen] == [False, False, True]
    assert routed.state == "done" and tail.closed
    assert [c async for c in routed] == []  # finished: iterating again gives nothing


async def test_buffered_stream_without_tail():
    routed = RoutedStream(DECISION, [chunk("x"), chunk("y")])
    texts = [c.choices[0].delta.content async for c in routed]
    assert texts == ["x", "y"] and routed.state == "done"


async def test_empty_stream_yields_nothing():
    routed = RoutedStream(DECISION, [])
    assert [c async for c in routed] == []


async def test_aclose_midway_closes_the_backend_stream():
    tail = Tail(["b", "c", "d"])
    routed = RoutedStream(DECISION, [chunk("a")], tail.gen())
    iterator = aiter(routed)
    assert (await anext(iterator)).choices[0].delta.content == "a"
    assert (await anext(iterator)).choices[0].delta.content == "b"
    await routed.aclose()
    assert routed.state == "closed" and tail.closed
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)
    with pytest.raises(InternalError, match="once"):
        await anext(aiter(routed))


async def test_failure_after_the_first_chunk_raises_from_the_iterator():
    tail = Tail(["b", "c"], fail_after=1)
    routed = RoutedStream(DECISION, [chunk("a")], tail.gen())
    got = []
    with pytest.raises(BackendTimeout):
        async for c in routed:
            got.append(c.choices[0].delta.content)
    assert got == ["a"]  # "b" was held back as the possible last chunk, then the stream failed
    assert tail.closed


def test_chunk_texts_joins_per_choice_and_counts_tool_arguments():
    chunks = [
        chunk("he", 0),
        chunk("x", 1),
        chunk("llo", 0),
        chunk(None, 1, tool_calls=[{"index": 0, "function": {"arguments": '{"a"'}}]),
        chunk(None, 1, tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}]),
    ]
    assert chunk_texts(chunks) == ["hello", 'x{"a": 1}']
    assert chunk_texts([]) == [""]
