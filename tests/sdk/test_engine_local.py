"""The engine across backend kinds: the tiny model in-process and OpenAI-compatible HTTP upstreams."""

from __future__ import annotations

import pytest

from sdk.engine import Engine
from sdk.errors import RequestError
from sdk.policy import Policy
from sdk.protocol import ChatRequest
from tests.support.fault_server import fault_server, refused_url
from tests.support.tiny_model import ANSWER

ROUTE = {"student": "student", "frontier": "frontier", "tasks": {"detect": ["hint"]}, "uncertain": "student"}


def policy(student: dict, frontier: dict) -> Policy:
    return Policy.model_validate(
        {"version": 1, "models": {"student": student, "frontier": frontier}, "routes": {"auto": ROUTE}}
    )


def http(url: str) -> dict:
    return {"backend": "openai", "base_url": url, "model": "m", "max_retries": 0, "transport": "httpx"}


def local(model_dir) -> dict:
    return {"backend": "transformers", "model": str(model_dir), "threads": 1}


def req(content, **params) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": content}], temperature=0, **params)


async def test_refused_student_falls_back_to_the_local_frontier(tiny_model_dir):
    with refused_url() as url:
        async with Engine(policy(http(url), local(tiny_model_dir))) as engine:
            completion, decision = await engine.complete(req("hi"), task_hint="chat")
            assert completion.choices[0].message.content == ANSWER
            assert (decision.side, decision.fallback_from) == ("frontier", "student")
            assert "backend_unavailable" in decision.reason
            routed = await engine.stream(req("hi", stream=True), task_hint="chat")
            text = "".join([c.choices[0].delta.content or "" async for c in routed if c.choices])
            assert text == ANSWER and routed.decision.fallback_from == "student"


async def test_a_request_the_local_student_cannot_read_goes_to_the_frontier(tiny_model_dir):
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    with fault_server() as frontier:
        async with Engine(policy(local(tiny_model_dir), http(frontier.base_url))) as engine:
            _, moved = await engine.complete(req(image), task_hint="vision")
            assert (moved.side, moved.rule, moved.lacking) == ("frontier", "capability", ("vision",))
            assert len(frontier.chat_requests) == 1
            direct = req(image).model_copy(update={"model": "student"})
            with pytest.raises(RequestError, match="cannot read 'image_url'"):
                await engine.complete(direct)  # called by name: no other side, the caller's 400
            completion, decision = await engine.complete(req("hi"), task_hint="chat")
            assert (completion.choices[0].message.content, decision.side) == (ANSWER, "student")
