"""The answer checks of a route's ``escalate`` list, each against a real upstream scripted to answer
well or badly: the student's answer passes (kept), fails (the frontier answers, ``escalated``), and the
same two as streams (the student's stream is buffered and checked whole; the caller gets either the
student's chunks or the frontier's stream). Through the gateway, with the official ``openai`` client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sdk.policy import Policy
from tests.gateway.promtext import sample
from tests.support.fault_server import Exchange, Fault, FaultServer, Ok, fault_server
from tests.support.inprocess import inprocess_gateway

HI = [{"role": "user", "content": "hi"}]
FRONTIER_TEXT = "the frontier answers"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@dataclass
class Reply(Fault):
    """Answer with ``message`` (content, tool calls, refusal) and ``finish_reason``: one JSON
    completion, or, for a streaming request, the same split over SSE deltas as OpenAI sends them."""

    message: dict[str, Any]
    finish_reason: str = "stop"
    base: dict[str, Any] = field(default_factory=dict)

    async def respond(self, ex: Exchange) -> bool:
        self.base = {"id": "chatcmpl-r", "created": 1700000000, "model": ex.model}
        if not ex.wants_stream:
            choice = {"index": 0, "message": {"role": "assistant", **self.message}}
            body = {
                **self.base,
                "object": "chat.completion",
                "choices": [{**choice, "finish_reason": self.finish_reason}],
            }
            await ex.send(200, json.dumps(body).encode(), "application/json")
            return True
        await ex.head(200, "text/event-stream")
        for delta, finish in [*self._deltas(), ({}, self.finish_reason)]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {**self.base, "object": "chat.completion.chunk", "choices": [choice]}
            await ex.chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await ex.chunk(b"data: [DONE]\n\n")
        await ex.end_chunks()
        return True

    def _deltas(self) -> Iterator[tuple[dict[str, Any], None]]:
        yield {"role": "assistant", "content": ""}, None
        content = self.message.get("content") or ""
        for piece in (content[: len(content) // 2], content[len(content) // 2 :]):
            if piece:
                yield {"content": piece}, None
        if self.message.get("refusal"):
            yield {"refusal": self.message["refusal"]}, None
        for i, call in enumerate(self.message.get("tool_calls") or []):
            args = call["function"]["arguments"]
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield {"tool_calls": [head]}, None
            for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
                yield {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, None


def call(name: str, arguments: str) -> dict[str, Any]:
    return {
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        ]
    }


@dataclass(frozen=True)
class Case:
    check: str
    params: dict[str, Any]
    good: Reply
    bad: Reply


# fmt: off
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
CASES = [
    Case("json_schema", {"response_format": SCHEMA_FORMAT},
         Reply({"content": '{"name": "Ada", "age": 36}'}),
         Reply({"content": '{"name": "Ada", "age": "36"}'})),
    Case("tool_args", {"tools": [WEATHER]},
         Reply(call("get_weather", '{"city": "Oslo"}'), "tool_calls"),
         Reply(call("get_weather", '{"town": "Oslo"}'), "tool_calls")),
    Case("refusal", {},
         Reply({"content": "Hello!"}), Reply({"content": "I'm sorry, but I can't help with that."})),
    Case("not_truncated", {},
         Reply({"content": "A whole answer."}), Reply({"content": "A cut ans"}, "length")),
]
# fmt: on
IDS = [case.check for case in CASES]


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


def policy(base_url: str, *checks: str) -> Policy:
    """Student and frontier on ``base_url``; route ``auto`` answers from the student first."""

    def model(name: str) -> dict[str, Any]:
        return {"backend": "openai", "base_url": base_url, "model": name, "max_retries": 0}

    route = {
        "student": "student",
        "frontier": "frontier",
        "tasks": {"detect": ["hint"]},
        "unknown": "student",
        "escalate": [{"check": check} for check in checks],
    }
    return Policy.model_validate(
        {
            "version": 1,
            "models": {"student": model("small"), "frontier": model("big")},
            "routes": {"auto": route},
        }
    )


def served_by(up: FaultServer) -> list[str]:
    return [r.json["model"] for r in up.chat_requests]


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_passing_answer_is_kept(upstream: FaultServer, case: Case):
    async with inprocess_gateway(policy(upstream.base_url, case.check)) as gateway:
        upstream.script(case.good)
        raw = await gateway.openai().chat.completions.with_raw_response.create(
            model="auto", messages=HI, **case.params
        )
    completion = raw.parse()
    assert (
        raw.headers["x-bitrate-target"] == "student"
        and completion.model_extra["bitrate"]["escalated"] is False
    )
    assert completion.choices[0].finish_reason == case.good.finish_reason
    assert served_by(upstream) == ["small"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_failing_answer_escalates_to_the_frontier(upstream: FaultServer, case: Case):
    async with inprocess_gateway(policy(upstream.base_url, case.check)) as gateway:
        upstream.script(case.bad, Ok(FRONTIER_TEXT))
        raw = await gateway.openai().chat.completions.with_raw_response.create(
            model="auto", messages=HI, **case.params
        )
        metrics = (await gateway.http.get("/metrics")).text
    completion = raw.parse()
    assert raw.status_code == 200 and completion.choices[0].message.content == FRONTIER_TEXT
    assert raw.headers["x-bitrate-target"] == "frontier"
    assert f"the student's answer failed check '{case.check}'; escalated" in raw.headers["x-bitrate-reason"]
    assert completion.model_extra["bitrate"]["escalated"] is True
    assert served_by(upstream) == ["small", "big"]
    assert sample(metrics, "bitrate_escalations_total", route="auto", task="unknown") == 1.0


async def _stream(gateway: Any, params: dict[str, Any]) -> tuple[list[Any], str]:
    stream = await gateway.openai().chat.completions.create(model="auto", messages=HI, stream=True, **params)
    chunks = [chunk async for chunk in stream]
    return chunks, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_a_stream_is_checked_whole_then_replayed_or_escalated(upstream: FaultServer, case: Case):
    async with inprocess_gateway(policy(upstream.base_url, case.check)) as gateway:
        upstream.script(case.good)
        kept, kept_text = await _stream(gateway, case.params)
        upstream.script(case.bad, Ok(FRONTIER_TEXT))
        moved, moved_text = await _stream(gateway, case.params)
    assert kept_text == (case.good.message.get("content") or "")
    assert kept[-1].model_extra["bitrate"]["escalated"] is False
    assert kept[-1].choices[0].finish_reason == case.good.finish_reason
    assert moved_text == FRONTIER_TEXT
    assert moved[-1].model_extra["bitrate"]["escalated"] is True
    assert all("bitrate" not in (c.model_extra or {}) for c in moved[:-1])
    assert served_by(upstream) == ["small", "small", "big"]


async def test_a_streamed_tool_call_is_reassembled_for_the_check_and_for_the_caller(upstream: FaultServer):
    case = CASES[IDS.index("tool_args")]
    async with inprocess_gateway(policy(upstream.base_url, "tool_args")) as gateway:
        upstream.script(case.good)
        chunks, _ = await _stream(gateway, case.params)
    pieces = [
        tc.function.arguments or "" for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []
    ]
    assert "".join(pieces) == '{"city": "Oslo"}'


async def test_a_caller_limit_turns_the_truncation_check_off(upstream: FaultServer):
    case = CASES[IDS.index("not_truncated")]
    async with inprocess_gateway(policy(upstream.base_url, "not_truncated")) as gateway:
        upstream.script(case.bad)
        completion = await gateway.openai().chat.completions.create(model="auto", messages=HI, max_tokens=4)
    assert completion.choices[0].finish_reason == "length"
    assert completion.model_extra["bitrate"]["escalated"] is False
    assert served_by(upstream) == ["small"]


async def test_the_refusal_field_escalates(upstream: FaultServer):
    async with inprocess_gateway(policy(upstream.base_url, "refusal")) as gateway:
        upstream.script(Reply({"content": None, "refusal": "I will not."}), Ok(FRONTIER_TEXT))
        completion = await gateway.openai().chat.completions.create(model="auto", messages=HI)
    assert completion.choices[0].message.content == FRONTIER_TEXT
    assert "failed check 'refusal'" in completion.model_extra["bitrate"]["reason"]


async def test_checks_run_in_order_and_the_first_failure_is_named(upstream: FaultServer):
    checks = ("refusal", "not_truncated", "non_empty")
    async with inprocess_gateway(policy(upstream.base_url, *checks)) as gateway:
        upstream.script(Reply({"content": "I can't help with that."}, "length"), Ok(FRONTIER_TEXT))
        completion = await gateway.openai().chat.completions.create(model="auto", messages=HI)
    assert "failed check 'refusal'" in completion.model_extra["bitrate"]["reason"]
