"""sdk.Client speaks the official openai client's exceptions, ``with_raw_response`` and ``timeout=``,
on real backends: a fault-injecting upstream (tests/support/fault_server) behind an ``openai`` backend.

Each error case is also sent to the same upstream fault by the official client itself: ours must be
an instance of the very class it raises, with the same ``status_code``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import sdk
from sdk import errors, openai_compat
from sdk.client import RoutedCompletion
from sdk.engine import Circuit, Engine
from sdk.policy import Policy
from tests.support.fault_server import (
    Drip,
    FaultServer,
    Hang,
    Status,
    StreamError,
    fault_server,
    refused_url,
)

MESSAGES = [{"role": "user", "content": "hello"}]
STUDENT = {"x-bitrate-task": "copy"}
"""A task hint the policy pins to the student."""


def policy_for(base_url: str, **route: Any) -> Policy:
    """``frontier`` (model ``big``) and ``student`` (model ``small``) on ``base_url``, no retries;
    route ``auto`` pins task ``copy`` to the student."""

    def model(name: str) -> dict[str, Any]:
        return {"backend": "openai", "base_url": base_url, "model": name, "max_retries": 0}

    auto = {"student": "student", "frontier": "frontier", "tasks": {"detect": ["hint"]}}
    auto |= {"pin": {"copy": "student"}, **route}
    data = {"version": 1, "models": {"frontier": model("big"), "student": model("small")}}
    return Policy.model_validate({**data, "routes": {"auto": auto}})


def client_for(base_url: str, **options: Any) -> sdk.Client:
    """A client on :func:`policy_for` whose circuits never open (each test scripts its failures)."""
    engine = Engine(policy_for(base_url), circuit=Circuit(threshold=10**6))
    return sdk.Client(engine=engine, **options)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


@pytest.fixture(scope="module")
def client(server: FaultServer) -> Iterator[sdk.Client]:
    with client_for(server.base_url) as made:
        yield made


@pytest.fixture(scope="module")
def official(server: FaultServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as made:
        yield made


def raised(call: Any, **kwargs: Any) -> Exception:
    with pytest.raises(Exception) as info:
        call(**kwargs)
    return info.value


@pytest.mark.parametrize(
    ("status", "official_class"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_an_upstream_status_raises_what_the_official_client_raises(
    server, client, official, status, official_class
):
    server.script(Status(status, "scripted failure"))
    theirs = raised(official.chat.completions.create, model="big", messages=MESSAGES)
    server.script(Status(status, "scripted failure"))
    ours = raised(client.chat.completions.create, model="frontier", messages=MESSAGES)

    assert type(theirs) is official_class
    assert isinstance(ours, official_class) and isinstance(ours, openai.APIStatusError)
    assert isinstance(ours, errors.UpstreamStatusError)  # and still bitrate's own
    assert ours.status_code == theirs.status_code == status
    assert (ours.backend, ours.upstream_status) == ("frontier", status)
    assert ours.body["code"] == ours.code
    assert "scripted failure" in ours.body["message"] and ours.message.startswith(f"Error code: {status}")
    assert ours.response.status_code == status
    assert ours.response.json() == {"error": ours.body}
    assert ours.request_id == ours.response.headers["x-request-id"]
    assert ours.request_id == server.chat_requests[-1].headers["x-request-id"]  # the id went upstream


def test_code_written_against_the_openai_client_catches_ours(server, client):
    def ask(create: Any) -> str:
        try:
            create(model="frontier", messages=MESSAGES)
        except openai.RateLimitError as exc:
            return f"rate limited ({exc.status_code})"
        except openai.APIStatusError as exc:
            return f"status {exc.status_code}"
        except openai.APIConnectionError:
            return "no connection"
        return "answered"

    server.script(Status(429), Status(500))
    assert ask(client.chat.completions.create) == "rate limited (429)"
    assert ask(client.chat.completions.create) == "status 500"
    assert ask(client.chat.completions.create) == "answered"


def test_a_bad_request_and_an_unknown_model(client):
    bad = raised(client.chat.completions.create, model="auto", messages=MESSAGES, temperature=9)
    assert isinstance(bad, openai.BadRequestError) and isinstance(bad, errors.InvalidRequest)
    assert (bad.status_code, bad.param, bad.body["type"]) == (400, "temperature", "invalid_request_error")

    unknown = raised(client.chat.completions.create, model="nope", messages=MESSAGES)
    assert isinstance(unknown, openai.NotFoundError) and isinstance(unknown, errors.UnknownModel)
    assert (unknown.status_code, unknown.code, unknown.param) == (404, "model_not_found", "model")


def test_an_unreachable_upstream_is_a_connection_error():
    with refused_url() as url, client_for(url) as client:
        err = raised(client.chat.completions.create, model="frontier", messages=MESSAGES)
    assert isinstance(err, openai.APIConnectionError) and not isinstance(err, openai.APIStatusError)
    assert isinstance(err, errors.BackendUnavailable)
    assert "frontier" in err.message


def test_timeout_bounds_the_call(server, client):
    server.script(Hang(30))  # the backend's own read timeout is 60 s
    err = raised(client.chat.completions.create, model="frontier", messages=MESSAGES, timeout=0.3)
    assert isinstance(err, openai.APITimeoutError) and isinstance(err, errors.BackendTimeout)
    assert "timeout=0.3s" in err.message

    server.script(Hang(30))
    err = raised(
        client.chat.completions.create, model="frontier", messages=MESSAGES, timeout=httpx.Timeout(0.3)
    )
    assert isinstance(err, openai.APITimeoutError)
    assert client.chat.completions.create(model="frontier", messages=MESSAGES, timeout=30).choices


def test_the_clients_timeout_is_the_default_and_bounds_each_chunk(server):
    with client_for(server.base_url, timeout=0.3) as client:
        server.script(Hang(30))
        assert isinstance(
            raised(client.chat.completions.create, model="frontier", messages=MESSAGES),
            openai.APITimeoutError,
        )

        server.script(Drip(delay=1.0))  # the first chunk comes at once, the next a second later
        stream = client.chat.completions.create(model="frontier", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APITimeoutError):
            list(stream)


def test_with_raw_response_has_the_headers_and_parses_to_the_answer(server, client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, extra_headers=STUDENT
    )
    assert raw.status_code == 200
    assert raw.headers["x-bitrate-route"] == "auto"
    assert (raw.headers["x-bitrate-target"], raw.headers["x-bitrate-task"]) == ("student", "copy")
    assert raw.headers["x-bitrate-reason"]
    assert raw.request_id == raw.headers["x-request-id"] == server.chat_requests[-1].headers["x-request-id"]
    completion = raw.parse()
    assert isinstance(completion, RoutedCompletion) and completion.bitrate.target == "student"
    assert (
        raw.http_response.json()["choices"][0]["message"]["content"] == completion.choices[0].message.content
    )

    streamed = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES, stream=True)
    assert streamed.headers["x-bitrate-target"] == "frontier"
    text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
    assert text == "Hello from the fault server."


def test_the_callers_request_id_is_kept_when_plausible(server, client):
    def sent_upstream(request_id: str) -> str:
        headers = {"x-request-id": request_id}
        raw = client.chat.completions.with_raw_response.create(
            model="frontier", messages=MESSAGES, extra_headers=headers
        )
        assert raw.request_id == server.chat_requests[-1].headers["x-request-id"]
        return raw.request_id

    assert sent_upstream("trace-7f3a:retry-1") == "trace-7f3a:retry-1"
    for implausible in ("has space", "a" * 129, "new\nline", ""):
        made = sent_upstream(implausible)
        assert made != implausible and len(made) == 32


def test_a_failure_mid_stream_raises_the_openai_class(server, client):
    server.script(StreamError(after=2, error={"message": "engine overloaded", "code": 503}))
    stream = client.chat.completions.create(model="frontier", messages=MESSAGES, stream=True)
    with pytest.raises(openai.InternalServerError) as info:
        list(stream)
    assert isinstance(info.value, errors.UpstreamStatusError) and info.value.status_code == 503


def test_a_refused_key_is_logged_naming_the_backend_and_its_variable(server, monkeypatch, caplog):
    monkeypatch.setenv("FRONTIER_KEY", "sk-test-not-real")
    policy = policy_for(server.base_url)
    policy.models["frontier"] = policy.models["frontier"].model_copy(update={"api_key_env": "FRONTIER_KEY"})
    server.script(Status(401, "invalid api key"))
    with sdk.Client(policy) as client, caplog.at_level(logging.WARNING, logger="bitrate.engine"):
        err = raised(client.chat.completions.create, model="frontier", messages=MESSAGES)
    assert isinstance(err, openai.AuthenticationError)
    [record] = [r for r in caplog.records if r.name == "bitrate.engine"]
    assert record.levelno == logging.WARNING
    assert "backend 'frontier'" in record.getMessage() and "$FRONTIER_KEY" in record.getMessage()
    assert "sk-test-not-real" not in record.getMessage()


async def test_the_async_client_speaks_the_same(server):
    async with sdk.AsyncClient(policy_for(server.base_url)) as client:
        server.script(Status(429))
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="frontier", messages=MESSAGES)
        assert info.value.status_code == 429
        raw = await client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        assert raw.headers["x-bitrate-target"] == "frontier" and raw.parse().choices
        server.script(Hang(30))
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="frontier", messages=MESSAGES, timeout=0.3)


def test_without_openai_the_errors_are_bitrates_own(server, client, monkeypatch):
    monkeypatch.setattr(openai_compat, "openai_module", lambda: None)
    server.script(Status(429))
    err = raised(client.chat.completions.create, model="frontier", messages=MESSAGES)
    assert type(err) is errors.UpstreamStatusError and not isinstance(err, openai.OpenAIError)
    server.script(Hang(30))
    err = raised(client.chat.completions.create, model="frontier", messages=MESSAGES, timeout=0.3)
    assert type(err) is errors.BackendTimeout
    assert (
        client.chat.completions.with_raw_response.create(model="frontier", messages=MESSAGES).parse().choices
    )
