"""Requests that need what the student lacks (tools, images, a JSON schema, a long prompt) are answered
by the frontier, with the reason stated: through the gateway with the official ``openai`` client, and
through ``sdk.Client``. The student and frontier are a real fault-injecting upstream; the local cases
run the tiny model as the student.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sdk
from sdk.policy import Policy
from tests.gateway.promtext import sample
from tests.support.fault_server import FaultServer, Ok, fault_server
from tests.support.inprocess import inprocess_gateway
from tests.support.tiny_model import ANSWER

FRONTIER_TEXT = "the frontier answers"
HI = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
IMAGE = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:,x"}}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
LONG = [{"role": "user", "content": "word " * 100}]  # 500 characters: ~125 tokens, over the 100 allowed

# need, create() arguments
NEEDS: list[tuple[str, dict[str, Any]]] = [
    ("tools", {"messages": HI, "tools": [TOOL]}),
    ("vision", {"messages": [{"role": "user", "content": IMAGE}]}),
    ("json_schema", {"messages": HI, "response_format": SCHEMA}),
    ("context", {"messages": LONG}),
]
NEED_IDS = [need for need, _ in NEEDS]


def model(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": base_url, "model": name, "max_retries": 0, **extra}


def policy(student: dict[str, Any], frontier: dict[str, Any], **route: Any) -> Policy:
    """Route ``auto``: every task goes to the student unless it lacks what the request needs."""
    return Policy.model_validate(
        {
            "version": 1,
            "models": {"student": student, "frontier": frontier},
            "routes": {
                "auto": {
                    "student": "student",
                    "frontier": "frontier",
                    "tasks": {"detect": ["hint"]},
                    "unknown": "student",
                    **route,
                }
            },
        }
    )


LACKING = {"tools": False, "vision": False, "json_schema": False, "max_context": 100}


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


def lacking_student(up: FaultServer) -> Policy:
    return policy(model("small", up.base_url, supports=LACKING), model("big", up.base_url))


@pytest.mark.parametrize(("need", "params"), NEEDS, ids=NEED_IDS)
async def test_gateway_sends_what_the_student_lacks_to_the_frontier(
    upstream: FaultServer, need: str, params: dict[str, Any]
):
    async with inprocess_gateway(lacking_student(upstream)) as gateway:
        upstream.script(Ok(FRONTIER_TEXT))
        raw = await gateway.openai().chat.completions.with_raw_response.create(model="auto", **params)
        metrics = (await gateway.http.get("/metrics")).text
    completion = raw.parse()
    assert raw.status_code == 200 and completion.choices[0].message.content == FRONTIER_TEXT
    assert [r.json["model"] for r in upstream.chat_requests] == ["big"]
    assert raw.headers["x-bitrate-target"] == "frontier"
    assert (
        f"the request needs {need}, which student 'student' does not support"
        in raw.headers["x-bitrate-reason"]
    )
    meta = completion.model_extra["bitrate"]
    assert (meta["rule"], meta["lacking"], meta["side"]) == ("capability", [need], "frontier")
    assert sample(metrics, "bitrate_capability_reroutes_total", route="auto", need=need) == 1.0


async def test_a_request_the_student_serves_stays_on_the_student(upstream: FaultServer):
    async with inprocess_gateway(lacking_student(upstream)) as gateway:
        raw = await gateway.openai().chat.completions.with_raw_response.create(model="auto", messages=HI)
        metrics = (await gateway.http.get("/metrics")).text
    assert raw.headers["x-bitrate-target"] == "student"
    assert raw.parse().model_extra["bitrate"]["lacking"] == []
    assert "bitrate_capability_reroutes_total{" not in metrics


async def test_gateway_stream_that_needs_tools_streams_from_the_frontier(upstream: FaultServer):
    async with inprocess_gateway(lacking_student(upstream)) as gateway:
        upstream.script(Ok(FRONTIER_TEXT))
        stream = await gateway.openai().chat.completions.create(
            model="auto", messages=HI, tools=[TOOL], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FRONTIER_TEXT
    assert chunks[-1].model_extra["bitrate"]["rule"] == "capability"
    assert [r.json["model"] for r in upstream.chat_requests] == ["big"]


@pytest.mark.parametrize(("need", "params"), NEEDS, ids=NEED_IDS)
def test_client_sends_what_the_student_lacks_to_the_frontier(
    upstream: FaultServer, need: str, params: dict[str, Any]
):
    upstream.script(Ok(FRONTIER_TEXT))
    with sdk.Client(lacking_student(upstream)) as client:
        answer = client.chat.completions.create(model="auto", **params)
    assert answer.choices[0].message.content == FRONTIER_TEXT
    assert (answer.bitrate.side, answer.bitrate.rule, answer.bitrate.lacking) == (
        "frontier",
        "capability",
        (need,),
    )
    assert f"needs {need}" in answer.bitrate.reason
    assert [r.json["model"] for r in upstream.chat_requests] == ["big"]


# ----------------------------------------------------------------- a local student (the tiny model)


def local(model_dir: Path, **supports: Any) -> dict[str, Any]:
    return {"backend": "transformers", "model": str(model_dir), "threads": 1, "supports": supports}


@pytest.mark.slow
def test_local_student_defaults_send_tools_and_images_to_the_frontier(
    upstream: FaultServer, tiny_model_dir: Path
):
    """A ``transformers`` student claims no tools and no images by default: nothing reaches it."""
    with sdk.Client(policy(local(tiny_model_dir), model("big", upstream.base_url))) as client:
        tools = client.chat.completions.create(model="auto", messages=HI, tools=[TOOL])
        image = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": IMAGE}])
        plain = client.chat.completions.create(model="auto", messages=HI, temperature=0)
    assert (tools.bitrate.rule, tools.bitrate.lacking) == ("capability", ("tools",))
    assert (image.bitrate.rule, image.bitrate.lacking) == ("capability", ("vision",))
    assert (plain.bitrate.side, plain.choices[0].message.content) == ("student", ANSWER)
    assert len(upstream.chat_requests) == 2


@pytest.mark.slow
async def test_a_local_refusal_before_any_token_falls_back(upstream: FaultServer, tiny_model_dir: Path):
    """The student's declared supports are wrong (tools), or the length estimate is low (the tiny model
    spends a token per character, four times the estimate): the backend refuses before generating,
    and the frontier answers, as a capability fallback (not a 400)."""
    claims_tools = local(tiny_model_dir, tools=True)
    async with inprocess_gateway(policy(claims_tools, model("big", upstream.base_url))) as gateway:
        client = gateway.openai()
        upstream.script(Ok(FRONTIER_TEXT), Ok(FRONTIER_TEXT), Ok(FRONTIER_TEXT))
        tools = await client.chat.completions.with_raw_response.create(
            model="auto", messages=HI, tools=[TOOL]
        )
        long = [{"role": "user", "content": "x" * 600}]  # 150 tokens estimated, 600 real: over 512
        too_long = await client.chat.completions.create(model="auto", messages=long)
        stream = await client.chat.completions.create(model="auto", messages=HI, tools=[TOOL], stream=True)
        chunks = [chunk async for chunk in stream]
        metrics = (await gateway.http.get("/metrics")).text
    meta = tools.parse().model_extra["bitrate"]
    assert tools.status_code == 200 and tools.parse().choices[0].message.content == FRONTIER_TEXT
    assert (meta["rule"], meta["fallback_from"], meta["lacking"]) == ("capability", "student", ["tools"])
    assert "student 'student' cannot serve the request's tools; fallback to frontier" in meta["reason"]
    assert too_long.model_extra["bitrate"]["lacking"] == ["context"]
    assert too_long.choices[0].message.content == FRONTIER_TEXT
    assert chunks[-1].model_extra["bitrate"]["fallback_from"] == "student"
    assert sample(metrics, "bitrate_capability_reroutes_total", route="auto", need="tools") == 2.0
    assert (
        sample(metrics, "bitrate_fallbacks_total", route="auto", from_target="student", to_target="frontier")
        == 3.0
    )


@pytest.mark.slow
async def test_no_side_serves_it_is_the_callers_400(tiny_model_dir: Path):
    """Both sides local: neither calls tools, so nothing moves and the caller gets a 400."""
    both_local = policy(local(tiny_model_dir), local(tiny_model_dir))
    async with inprocess_gateway(both_local) as gateway:
        response = await gateway.http.post(
            "/v1/chat/completions", json={"model": "auto", "messages": HI, "tools": [TOOL]}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsupported" and response.json()["error"]["param"] == "tools"
