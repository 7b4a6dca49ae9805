"""The routed stream's state machine, on plain async generators standing in for a backend's stream."""

from __future__ import annotations

import pytest

from sdk.decision import Decision
from sdk.engine_stream import RoutedStream, chunk_texts
from sdk.errors import BackendTimeout, InternalError
from sdk.protocol import ChatCompletionChunk

DECISION = Decision(route="auto", target="student", side="student", task="copy", rule="verdict")


def chunk(text: str | None = None, index: int = 0, finish: str | None = None, **delta) -> ChatCompletionChunk:
    choice = {"index": index, "delta": {"content": text, **delta}, "finish_reason": finish}
    return ChatCompletionChunk.model_validate({"id": "c1", "model": "m", "choices": [choice]})


def usage_chunk() -> ChatCompletionChunk:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return ChatCompletionChunk.model_validate({"id": "c1", "model": "m", "choices": [], "usage": usage})


class Tail:
    """An async generator of chunks that records whether it was closed, optionally failing midway."""

    def __init__(self, texts, fail_after: int | None = None, finish: bool = False):
        self.texts, self.fail_after, self.closed, self.finish = texts, fail_after, False, finish

    async def gen(self):
        try:
            for i, text in enumerate(self.texts):
                if i == self.fail_after:
                    raise BackendTimeout("no chunk within 1s", backend="student")
                last = self.finish and i == len(self.texts) - 1
                yield chunk(text, finish="stop" if last else None)
        finally:
            self.closed = True


async def test_states_and_the_finishing_chunk_carries_the_decision():
    tail = Tail(["b", "c"], finish=True)
    routed = RoutedStream(DECISION, [chunk("a")], tail.gen())
    assert routed.state == "ready"
    seen, states = [], []
    async for c in routed:
        seen.append(c)
        states.append(routed.state)
    assert states == ["streaming", "streaming", "streaming"]  # each chunk is out as soon as it arrives
    assert [c.choices[0].delta.content for c in seen] == ["a", "b", "c"]
    assert seen[-1].model_extra["bitrate"] == DECISION.to_meta()
    assert [("bitrate" in c.model_extra) for c in seen] == [False, False, True]
    assert routed.state == "done" and tail.closed  # done once the backend's stream ended
    assert [c async for c in routed] == []  # finished: iterating again gives nothing


async def test_each_chunk_is_forwarded_before_the_next_one_is_read():
    tail = Tail(["b", "c"])
    routed = RoutedStream(DECISION, [], tail.gen())
    iterator = aiter(routed)
    assert (await anext(iterator)).choices[0].delta.content == "b"
    assert not tail.closed  # "b" came out while the backend's stream was still open
    await routed.aclose()


async def test_usage_chunk_carries_the_decision_when_usage_was_asked():
    async def gen():
        yield chunk("a", finish="stop")
        yield usage_chunk()

    routed = RoutedStream(DECISION, [], gen(), usage=True)
    seen = [c async for c in routed]
    assert [("bitrate" in c.model_extra) for c in seen] == [False, True]
    assert seen[-1].usage is not None


async def test_decision_waits_for_every_choice_to_finish():
    async def gen():
        yield chunk("a", 0, finish="stop")
        yield chunk("b", 1)
        yield chunk(None, 1, finish="length")

    routed = RoutedStream(DECISION, [], gen(), choices=2)
    seen = [c async for c in routed]
    assert [("bitrate" in c.model_extra) for c in seen] == [False, False, True]


async def test_stream_without_a_finishing_chunk_gets_an_extra_one():
    tail = Tail(["b", "c"])  # no finish_reason, no usage
    routed = RoutedStream(DECISION, [chunk("a")], tail.gen())
    seen = [c async for c in routed]
    assert [c.choices[0].delta.content for c in seen[:3]] == ["a", "b", "c"]
    assert [("bitrate" in c.model_extra) for c in seen] == [False, False, False, True]
    extra = seen[-1]
    assert extra.choices == [] and (extra.id, extra.model) == ("c1", "m")
    assert extra.model_extra["bitrate"] == DECISION.to_meta()


async def test_buffered_stream_without_tail():
    routed = RoutedStream(DECISION, [chunk("x"), chunk("y", finish="stop")])
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
    assert got == ["a", "b"]  # every chunk out as it arrived, then the stream failed
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
