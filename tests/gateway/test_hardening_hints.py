"""A caller's task hint is bounded before it reaches a header, a cache or a metric label.

- an ``x-bitrate-task`` header that is no task name (over 64 characters, or characters outside
  letters, digits, space and ``_ - . : /``) is a 400 ``invalid_request`` naming the header,
  before any upstream call, and the message never repeats the hint;
- ``bitrate.task`` follows the same rule (400 naming ``bitrate.task``); an invalid
  ``metadata.task`` is no hint (OpenAI's free-form metadata), so the request is answered;
- hinted tasks the route does not know share one ``task="other"`` series in ``/metrics``;
  a known task (here a pin key) keeps its name;
- every answer still parses in the official ``openai`` client and echoes the valid hint.

Real parts: a gateway under uvicorn on 127.0.0.1 over the fault server as upstream, the
official ``openai`` client (and plain httpx for the bulk of a flood).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import sdk
from sdk.errors import InvalidRequest
from sdk.policy import Policy
from tests.gateway.conftest import upstream_policy
from tests.gateway.promtext import sample
from tests.support.fault_server import FaultServer, fault_server
from tests.support.gateway_server import RunningServer, running_gateway

HI = [{"role": "user", "content": "hi"}]
CHAT = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
TASK = "x-bitrate-task"


def _policy(base_url: str) -> Policy:
    """Route ``auto`` over the fault server, task by hint, the task ``code`` pinned (known)."""
    policy = upstream_policy(base_url)
    auto = policy.routes["auto"]
    policy.routes["auto"] = auto.model_copy(
        update={"pin": {"code": "student"}, "unknown": "student", "uncertain": "student"}
    )
    return policy


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    with fault_server() as up:
        yield up


@pytest.fixture(scope="module")
def gateway(upstream: FaultServer) -> Iterator[RunningServer]:
    with running_gateway(_policy(upstream.base_url)) as server:
        yield server


@pytest.fixture
def client(gateway: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as made:
        yield made


def _error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


# ------------------------------------------------------------------ the header


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "hint",
    ["x" * 100_000, "y" * 65, "code; drop", "code\tcode", "a=b"],
    ids=["100kB", "65 chars", "semicolon", "tab", "equals"],
)
def test_an_invalid_hint_header_is_a_400_naming_it_before_any_upstream_call(
    upstream: FaultServer, client: openai.OpenAI, hint: str, stream: bool
):
    before = len(upstream.chat_requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="auto",
            messages=HI,  # type: ignore[arg-type]
            stream=stream,
            extra_headers={TASK: hint},
        )
    error = _error_of(caught.value)
    assert error["param"] == TASK and error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    message = error["message"]
    assert TASK in message and "64" in message and "\n" not in message
    assert hint not in message and len(message) < 200, "the message never repeats the hint"
    assert len(upstream.chat_requests) == before, "a rejected hint never reaches a backend"


@pytest.mark.parametrize(
    "hint, task",
    [
        ("z" * 64, "z" * 64),
        ("Legal-v2.1:en/us_Q A", "Legal-v2.1:en/us_Q A"),
        ("", "unknown"),
    ],
    ids=["64 chars", "every safe character", "blank"],
)
def test_a_valid_hint_is_answered_and_echoed(client: openai.OpenAI, hint: str, task: str):
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HI,  # type: ignore[arg-type]
        extra_headers={TASK: hint},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content, "the answer parses in the openai client"
    assert raw.headers[TASK] == task
    assert (completion.model_extra or {})["bitrate"]["task"] == task


# ------------------------------------------------------------------ the body


def test_an_invalid_bitrate_task_is_a_400_naming_it(upstream: FaultServer, client: openai.OpenAI):
    before = len(upstream.chat_requests)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="auto",
            messages=HI,  # type: ignore[arg-type]
            extra_body={"bitrate": {"task": "t" * 300}},
        )
    error = _error_of(caught.value)
    assert error["param"] == "bitrate.task" and error["code"] == "invalid_request"
    assert len(upstream.chat_requests) == before


def test_an_invalid_metadata_task_is_no_hint_and_the_request_is_answered(client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HI,  # type: ignore[arg-type]
        metadata={"task": "Summarise the meeting, please!"},
    )
    assert raw.parse().choices[0].message.content
    assert raw.headers[TASK] == "unknown", "an invalid metadata.task names no task"
    valid = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=HI,  # type: ignore[arg-type]
        metadata={"task": "code"},
    )
    assert valid.headers[TASK] == "code"


def test_the_in_process_client_applies_the_same_rule(upstream: FaultServer):
    with sdk.Client(policy=_policy(upstream.base_url)) as local:
        with pytest.raises(InvalidRequest) as caught:
            local.chat.completions.create(model="auto", messages=HI, extra_headers={TASK: "q" * 1000})
        assert caught.value.param == TASK
        answer = local.chat.completions.create(model="auto", messages=HI, extra_headers={TASK: "code"})
    assert answer.bitrate.task == "code"


# ------------------------------------------------------------------ metrics


def _series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_distinct_unknown_hints_share_one_other_series_and_known_tasks_keep_their_name(upstream: FaultServer):
    flood = 3000
    with running_gateway(_policy(upstream.base_url)) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            statuses = {
                http.post("/v1/chat/completions", content=CHAT, headers={TASK: f"task-{i:05d}"}).status_code
                for i in range(flood)
            }
            assert statuses == {200}
            metrics = http.get("/metrics").text
        with openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="auto",
                messages=HI,  # type: ignore[arg-type]
                extra_headers={TASK: "code"},
            )
            assert raw.parse().choices[0].message.content and raw.headers[TASK] == "code"
            unknown = client.chat.completions.with_raw_response.create(
                model="auto",
                messages=HI,  # type: ignore[arg-type]
                extra_headers={TASK: "task-99999"},
            )
            assert unknown.headers[TASK] == "task-99999", "the caller still sees its own hint"
        after = httpx.get(f"{gateway.url}/metrics").text
    labels = dict(route="auto", target="student", status="200")
    assert sample(metrics, "bitrate_requests_total", task="other", **labels) == flood
    assert len(_series(metrics, "bitrate_requests_total")) == 1, _series(metrics, "bitrate_requests_total")
    assert len(metrics) < 20_000
    assert sample(after, "bitrate_requests_total", task="code", **labels) == 1
    assert sample(after, "bitrate_requests_total", task="other", **labels) == flood + 1
    assert "task-0" not in after
