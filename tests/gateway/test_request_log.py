"""The gateway's request ids and per-request log line (``gateway.request_log``), its JSON log format,
and ``bitrate serve``'s banner (``gateway.banner``); in-process, upstream: the fault server."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.middleware.gzip import GZipMiddleware

from gateway.app import create_app
from gateway.banner import banner_lines, public_url
from gateway.request_log import Fields, JsonFormatter
from sdk.engine import Circuit, Engine
from sdk.policy import ServerSettings
from tests.sdk.test_client_openai_compat import policy_for
from tests.support.fault_server import FaultServer, Status, fault_server
from tests.support.inprocess import InProcess, inprocess_app, inprocess_gateway

PROMPT = "canary-7d1e prompt text"
MADE_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with fault_server() as running:
        yield running


@pytest.fixture
async def gateway(server: FaultServer) -> AsyncIterator[InProcess]:
    engine = Engine(policy_for(server.base_url), circuit=Circuit(threshold=10**6))
    async with inprocess_gateway(engine) as running:
        yield running


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], **fields}


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bitrate.requests"]


async def test_the_callers_request_id_is_returned_and_sent_upstream(gateway, server):
    answer = await gateway.http.post("/v1/chat/completions", json=chat(), headers={"x-request-id": "abc-123"})
    assert answer.status_code == 200
    assert answer.headers["x-request-id"] == "abc-123"
    assert server.chat_requests[-1].headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "semi;colon", "ünï".encode("latin-1")])
async def test_a_missing_or_implausible_id_is_replaced(gateway, server, given):
    headers = {"x-request-id": given} if given is not None else {}
    answer = await gateway.http.post("/v1/chat/completions", json=chat(), headers=headers)
    made = answer.headers["x-request-id"]
    assert MADE_ID.fullmatch(made) and made != given
    assert server.chat_requests[-1].headers["x-request-id"] == made


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", chat(model="nope"), 404),  # unknown model
        ("/v1/chat/completions", {"model": "auto"}, 400),  # no messages
        ("/v1/chat/completions", chat(stream=True), 200),  # a stream
        ("/v1/models", None, 200),  # the ordinary path
        ("/healthz", None, 200),
        ("/no/such/path", None, 404),
    ],
)
async def test_every_answer_carries_a_request_id(gateway, path, body, status):
    if body is None:
        answer = await gateway.http.get(path, headers={"x-request-id": "id-42"})
    else:
        answer = await gateway.http.post(path, json=body, headers={"x-request-id": "id-42"})
    assert answer.status_code == status
    assert answer.headers.get_list("x-request-id") == ["id-42"]


async def test_an_upstream_error_answer_carries_the_id(gateway, server):
    server.script(Status(500), Status(500))  # the frontier, then nothing to fall back to
    answer = await gateway.http.post("/v1/chat/completions", json=chat(model="frontier"))
    assert answer.status_code == 502 and MADE_ID.fullmatch(answer.headers["x-request-id"])


async def test_an_auth_failure_carries_the_id(server, monkeypatch):
    monkeypatch.setenv("GATEWAY_KEYS", "sk-gw-1")
    settings = ServerSettings(api_keys_env="GATEWAY_KEYS")
    async with inprocess_gateway(policy_for(server.base_url), settings) as gateway:
        answer = await gateway.http.post("/v1/chat/completions", json=chat(), headers={"x-request-id": "k-1"})
    assert answer.status_code == 401 and answer.headers["x-request-id"] == "k-1"


async def test_an_app_with_more_middleware_still_answers_one_id(server):
    app = create_app(policy_for(server.base_url))
    app.add_middleware(GZipMiddleware)  # the ordinary path for chat calls too
    async with inprocess_app(app) as gateway:
        ok = await gateway.http.post("/v1/chat/completions", json=chat(), headers={"x-request-id": "m-1"})
        missing = await gateway.http.post("/v1/chat/completions", json=chat(model="nope"))
    assert ok.headers.get_list("x-request-id") == ["m-1"]
    assert len(missing.headers.get_list("x-request-id")) == 1


async def test_one_log_line_per_call_without_the_prompt(gateway, caplog):
    with caplog.at_level(logging.INFO, logger="bitrate.requests"):
        answer = await gateway.http.post(
            "/v1/chat/completions", json=chat(), headers={"x-request-id": "log-1", "x-bitrate-task": "copy"}
        )
        await gateway.http.post("/v1/chat/completions", json=chat(model="nope"))
    ok, failed = request_lines(caplog)
    assert ok.levelno == logging.INFO and isinstance(ok.msg, Fields)
    usage = answer.json()["usage"]
    assert dict(ok.msg) == {
        "request_id": "log-1",
        "route": "auto",
        "task": "copy",
        "target": "student",
        "status": 200,
        "latency_ms": ok.msg["latency_ms"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "stream": False,
        "reason": answer.headers["x-bitrate-reason"],
    }
    line = ok.getMessage()
    assert line.startswith("request_id=log-1 route=auto task=copy target=student status=200 latency_ms=")
    assert f'reason="{answer.headers["x-bitrate-reason"]}"' in line
    assert failed.msg["status"] == 404 and failed.msg["error"] == "model_not_found"
    assert all(PROMPT not in r.getMessage() for r in caplog.records)


async def test_a_streams_line_comes_with_its_last_byte_and_tokens(gateway, caplog):
    body = chat(stream=True, stream_options={"include_usage": True})
    with caplog.at_level(logging.INFO, logger="bitrate.requests"):
        answer = await gateway.http.post("/v1/chat/completions", json=body)
    [line] = request_lines(caplog)
    assert answer.status_code == 200
    assert (line.msg["stream"], line.msg["status"], line.msg["target"]) == (True, 200, "frontier")
    assert line.msg["completion_tokens"] > 0


def test_caller_text_cannot_forge_a_line():
    line = str(Fields(route="auto\nINFO: request_id=forged", status=200, stream=False))
    assert "\n" not in line
    assert line == 'route="auto\\nINFO: request_id=forged" status=200 stream=false'
    assert len(str(Fields(route="x" * 10_000))) < 300


def test_json_format_writes_each_record_as_one_object():
    formatter = JsonFormatter()
    fields = Fields(request_id="r-1", route="auto", status=200, stream=False, reason='a "quoted"\nreason')
    record = logging.LogRecord("bitrate.requests", logging.INFO, __file__, 1, fields, None, None)
    data = json.loads(formatter.format(record))
    assert data.pop("time").endswith("+00:00")
    assert data == {
        "level": "info",
        "logger": "bitrate.requests",
        "message": "request",
        "request_id": "r-1",
        "route": "auto",
        "status": 200,
        "stream": False,
        "reason": 'a "quoted"\nreason',
    }
    plain = logging.LogRecord("uvicorn.error", logging.WARNING, __file__, 1, "%s went %s", ("a", "b"), None)
    assert json.loads(formatter.format(plain))["message"] == "a went b"


def test_the_banner_names_routes_models_and_where_they_point_never_a_key(monkeypatch):
    monkeypatch.setenv("FRONTIER_KEY", "sk-secret-value")
    policy = policy_for("https://user:pass@api.example.com:8443/v1?token=t0k")
    frontier = policy.models["frontier"].model_copy(update={"api_key_env": "FRONTIER_KEY"})
    policy.models["frontier"] = frontier
    lines = banner_lines(policy, "deploy/policy.yaml", "http://0.0.0.0:8000", "json")
    assert lines[0] == "bitrate 0.1.0 gateway, policy deploy/policy.yaml"
    assert lines[1].startswith("route 'auto': student 'student', frontier 'frontier', profile none")
    assert lines[2] == (
        "model 'frontier': openai at https://api.example.com:8443/v1, model 'big', key from $FRONTIER_KEY"
    )
    assert lines[3] == "model 'student': openai at https://api.example.com:8443/v1, model 'small', no key"
    assert lines[-1] == "listening on http://0.0.0.0:8000, log format json"
    text = "\n".join(lines)
    assert "pass" not in text and "t0k" not in text and "sk-secret-value" not in text
    assert public_url("http://[::1]:9/v1") == "http://[::1]:9/v1"
