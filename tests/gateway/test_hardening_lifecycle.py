"""A request's life around its answer: the caller leaving, slow callers, readiness, shutdown.

- a caller that leaves a JSON call stops the upstream call (no retry, no fallback), counted 499;
- ``/readyz`` answers at once from background health checks, per backend and per route,
  and stays ready while a route's fallback can serve;
- past the graceful-shutdown period, in-flight calls get a 503 body or an SSE error event;
- request headers (``server.header_timeout``) and bodies (``server.body_timeout``) that come
  too slowly get a 408 and a closed connection;
- strict booleans, a finite temperature, docs pages that can be hidden, ``/metrics`` behind a key.

Everything runs on real sockets: gateways under uvicorn (in a thread, or ``bitrate serve`` as a
subprocess), fault servers as upstreams, the official ``openai`` client or raw sockets as callers.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from gateway import app as gateway_app
from sdk.errors import ConfigError
from sdk.policy import Policy, ServerSettings, load_policy
from tests.gateway.conftest import upstream_policy
from tests.gateway.promtext import sample
from tests.gateway.test_shutdown import subprocess_gateway
from tests.support.fault_server import Drip, FaultServer, Hang, Ok, Stall, Status, fault_server, refused_url
from tests.support.gateway_server import RunningServer, running_gateway

HI = [{"role": "user", "content": "hi"}]
CHAT = b'{"model": "student", "messages": [{"role": "user", "content": "hi"}]}'


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _metrics(server: RunningServer, **headers: str) -> str:
    return httpx.get(f"{server.url}/metrics", headers=headers).text


# ------------------------------------------------------------------ the caller leaves


def test_a_caller_leaving_a_json_call_stops_the_upstream_call_and_counts_499():
    with fault_server() as up:
        up.script(Stall(seconds=30))
        policy = upstream_policy(up.base_url, timeout=30.0, max_retries=2)
        auto = policy.routes["auto"]
        policy.routes["auto"] = auto.model_copy(update={"unknown": "student"})  # student, may fall back
        with running_gateway(policy) as gateway:
            client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=1.0)
            with client, pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
            assert up.client_gone.wait(10), "the upstream call must be closed once the caller left"
            time.sleep(1.0)  # time for a retry or a fallback to show up, if one were made
            requests = up.chat_requests
            metrics = _metrics(gateway)
    assert len(requests) == 1, "no retry and no fallback after the caller left"
    assert sample(metrics, "bitrate_requests_total", route="auto", target="-", task="-", status="499") == 1
    answered = [line for line in metrics.splitlines() if line.startswith("bitrate_requests_total{")]
    assert not [line for line in answered if 'status="200"' in line], answered


def test_a_caller_leaving_mid_body_is_499_not_an_internal_error(caplog: pytest.LogCaptureFixture):
    with fault_server() as up, running_gateway(upstream_policy(up.base_url)) as gateway:
        with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
            sock.sendall(_head(len(CHAT)) + CHAT[:10])
            time.sleep(0.3)  # the gateway is reading the body
        metrics = _poll(lambda: _metrics(gateway), lambda text: 'status="499"' in text)
    assert sample(metrics, "bitrate_requests_total", route="-", target="-", task="-", status="499") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# ------------------------------------------------------------------ readiness


def _models_policy(urls: dict[str, str], *, route: dict[str, Any] | None, **server: Any) -> Policy:
    models = {
        name: {"backend": "openai", "base_url": url, "model": name, "max_retries": 0, "timeout": 1.0}
        for name, url in urls.items()
    }
    data: dict[str, Any] = {"version": 1, "models": models, "server": {"health_interval": 60, **server}}
    if route is not None:
        data["routes"] = {"auto": {"tasks": {"detect": ["hint"]}, **route}}
    return Policy.model_validate(data)


def test_readyz_answers_at_once_while_every_backend_hangs():
    names = ["student", "frontier", "spare1", "spare2"]
    with fault_server() as up:
        up.script(*[Hang(30)] * 20, route="models")  # each health check waits past its 1 s timeout
        policy = _models_policy(
            dict.fromkeys(names, up.base_url), route={"student": "student", "frontier": "frontier"}
        )
        with running_gateway(policy) as gateway:
            started = time.perf_counter()
            ready = httpx.get(f"{gateway.url}/readyz", timeout=30)
            took = time.perf_counter() - started
    sequential = len(names) * 1.0  # one health timeout after another, as a probe per call would take
    assert took < sequential / 8, f"/readyz took {took:.2f}s"
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["routes"] == {"auto": "down"}
    assert set(body["backends"]) == set(names)
    assert all(b["healthy"] is False and b["checked_at"] for b in body["backends"].values())


@pytest.mark.parametrize(
    ("down", "fallback", "status", "route_status"),
    [
        ("student", {}, 200, "degraded"),  # student_error: frontier (the default)
        ("student", {"student_error": "none"}, 503, "down"),
        ("frontier", {}, 503, "down"),  # frontier_error: none (the default)
        ("frontier", {"frontier_error": "student"}, 200, "degraded"),
        (None, {}, 200, "ok"),
    ],
)
def test_readyz_is_ready_while_every_route_can_serve(
    down: str | None, fallback: dict[str, str], status: int, route_status: str
):
    with fault_server() as up, refused_url() as dead:
        urls = {name: dead if name == down else up.base_url for name in ("student", "frontier")}
        route = {"student": "student", "frontier": "frontier", "fallback": fallback}
        with running_gateway(_models_policy(urls, route=route)) as gateway:
            ready = httpx.get(f"{gateway.url}/readyz")
    body = ready.json()
    assert ready.status_code == status and body["status"] == ("ok" if status == 200 else "unavailable")
    assert body["routes"] == {"auto": route_status}
    assert {name: b["healthy"] for name, b in body["backends"].items()} == {
        name: name != down for name in ("student", "frontier")
    }


def test_readyz_follows_the_background_checks():
    with fault_server() as up:
        up.script(*[Status(503)] * 2, Ok(), route="models")  # down at startup, then back
        policy = _models_policy({"student": up.base_url}, route=None, health_interval=0.2)
        with running_gateway(policy) as gateway:
            first = httpx.get(f"{gateway.url}/readyz").status_code
            later = _poll(lambda: httpx.get(f"{gateway.url}/readyz").status_code, lambda s: s == 200)
    assert (first, later) == (503, 200)


# ------------------------------------------------------------------ shutdown past the grace period


def _served_policy(base_url: str, **server: Any) -> dict[str, Any]:
    model = {"backend": "openai", "base_url": base_url, "max_retries": 0, "timeout": 60.0}
    return {
        "version": 1,
        "models": {"student": {**model, "model": "small"}, "frontier": {**model, "model": "big"}},
        "server": {"health_interval": 60, **server},
    }


def test_shutdown_past_the_grace_period_answers_503_and_ends_streams_with_an_error_event(tmp_path: Path):
    long_text = " ".join(["word"] * 120)  # ~60 s at 0.5 s an event: outlives the 5 s grace
    with fault_server() as up:
        up.script(Stall(60), Drip(0.5, long_text))
        with subprocess_gateway(_served_policy(up.base_url), tmp_path) as gateway:
            answers: dict[str, Any] = {}
            events: list[str] = []
            streaming = threading.Event()

            def call() -> None:
                body = {"model": "student", "messages": HI}
                answers["json"] = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=60)

            def stream() -> None:
                body = {"model": "student", "messages": HI, "stream": True}
                with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=60) as r:
                    for line in r.iter_lines():
                        if line.startswith("data: "):
                            events.append(line[6:])
                            streaming.set()

            callers = [threading.Thread(target=call), threading.Thread(target=stream)]
            callers[0].start()
            _poll(lambda: len(up.chat_requests), lambda n: n == 1)
            callers[1].start()
            assert streaming.wait(20), gateway.output
            gateway.process.send_signal(signal.SIGTERM)
            for caller in callers:
                caller.join(30)
            status = gateway.process.wait(30)
    response = answers["json"]
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    error = _error(response)
    assert error["code"] == "shutting_down" and error["type"] == "server_error"
    assert len(events) > 1 and "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "shutting_down"
    assert status == 0, gateway.output
    assert "Traceback" not in gateway.output and "Exception in ASGI application" not in gateway.output


# ------------------------------------------------------------------ slow callers


def _head(length: int) -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % length
    )


def _trickle(sock: socket.socket, data: bytes, every: float, give_up: float = 20.0) -> bytes:
    """Send ``data`` a byte every ``every`` seconds until the server answers; then read to its close."""
    sock.settimeout(every)
    got = b""
    deadline = time.monotonic() + give_up
    sent = 0
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if sent < len(data):
                sock.sendall(data[sent : sent + 1])
                sent += 1
            continue
        except ConnectionError:
            break
        if not chunk:
            return got  # closed by the server
        got += chunk
    raise AssertionError(f"the connection was not closed within {give_up:g}s; got {got!r}")


def _answer(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@contextmanager
def _serving(app: Any, http: str) -> Iterator[int]:
    """``app`` under uvicorn with ``gateway.app.server_protocol`` (as ``bitrate serve`` runs it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, http=gateway_app.server_protocol(app, http), log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _poll(lambda: server.started, bool)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_slow_headers_get_a_408_and_a_closed_connection(http: str):
    settings = ServerSettings(header_timeout=0.5)
    with (
        fault_server() as up,
        _serving(gateway_app.create_app(upstream_policy(up.base_url), settings), http) as port,
    ):
        with socket.create_connection(("127.0.0.1", port)) as slow:
            raw = _trickle(
                slow, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 200, 0.1
            )
        with socket.create_connection(("127.0.0.1", port)) as idle:
            idle.settimeout(10)
            idle_answer = idle.recv(65536)
        with socket.create_connection(
            ("127.0.0.1", port)
        ) as kept:  # keep-alive: idle between requests is fine
            first = _exchange(kept, _head(len(CHAT)) + CHAT)
            time.sleep(1.0)  # longer than header_timeout, shorter than uvicorn's keep-alive
            second = _exchange(kept, _head(len(CHAT)) + CHAT)
    status, body = _answer(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "headers" in body["error"]["message"]
    assert idle_answer.startswith(b"HTTP/1.1 408 ")
    assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 200 ")


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.settimeout(10)
    sock.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return got


def test_bitrate_serve_cuts_slow_headers(tmp_path: Path):
    with (
        fault_server() as up,
        subprocess_gateway(_served_policy(up.base_url, header_timeout=1), tmp_path) as gateway,
        socket.create_connection(("127.0.0.1", gateway.port)) as slow,
    ):
        raw = _trickle(slow, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 200, 0.2)
    status, body = _answer(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"


def test_a_slow_body_gets_a_408_and_a_closed_connection():
    with fault_server() as up:
        policy = upstream_policy(up.base_url, server={"body_timeout": 0.5})
        with (
            running_gateway(policy) as gateway,
            socket.create_connection(("127.0.0.1", gateway.port)) as slow,
        ):
            raw = _trickle(slow, _head(len(CHAT)) + CHAT, 0.1)
            metrics = _metrics(gateway)
        requests = up.chat_requests
    status, body = _answer(raw)
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert body["error"]["type"] == "invalid_request_error" and "body" in body["error"]["message"]
    assert requests == [], "nothing reached the upstream"
    assert sample(metrics, "bitrate_requests_total", route="-", target="-", task="-", status="408") == 1


# ------------------------------------------------------------------ smaller contracts


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: FaultServer) -> Iterator[RunningServer]:
    with running_gateway(upstream_policy(upstream.base_url)) as server:
        yield server


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"stream": "true"}, "stream"),
        ({"logprobs": "no"}, "logprobs"),
        ({"stream": True, "stream_options": {"include_usage": "true"}}, "stream_options.include_usage"),
        ({"tools": [{"function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ],
)
def test_booleans_are_strict(gateway: RunningServer, extra: dict[str, Any], param: str):
    body = {"model": "student", "messages": HI, **extra}
    response = httpx.post(f"{gateway.base_url}/chat/completions", json=body)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    error = _error(response)
    assert error["param"] == param and "boolean" in error["message"]


@pytest.mark.parametrize(
    ("field", "value"), [("temperature", "NaN"), ("temperature", "Infinity"), ("top_p", "NaN")]
)
def test_a_non_finite_float_is_named_as_such(gateway: RunningServer, field: str, value: str):
    body = b'{"model": "student", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (
        field.encode(),
        value.encode(),
    )
    response = httpx.post(f"{gateway.base_url}/chat/completions", content=body)
    error = _error(response)
    assert response.status_code == 400 and error["param"] == field
    assert "finite number" in error["message"] and "<=" not in error["message"]


def test_the_booleans_still_take_json_booleans(gateway: RunningServer):
    with openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0) as client:
        answer = client.chat.completions.create(model="student", messages=HI, logprobs=False)  # type: ignore[arg-type]
    assert answer.choices[0].message.content


@pytest.mark.parametrize("exposed", [True, False])
def test_the_docs_pages_follow_expose_docs(upstream: FaultServer, exposed: bool):
    with running_gateway(upstream_policy(upstream.base_url, server={"expose_docs": exposed})) as server:
        answers = {path: httpx.get(f"{server.url}{path}") for path in ("/docs", "/redoc", "/openapi.json")}
    for path, response in answers.items():
        if exposed:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 404, path
            assert _error(response)["code"] == "unknown_path"


def test_metrics_auth_asks_for_a_gateway_key(monkeypatch: pytest.MonkeyPatch, upstream: FaultServer):
    monkeypatch.setenv("LIFECYCLE_KEYS", "sk-gw")
    server = {"api_keys_env": "LIFECYCLE_KEYS", "metrics_auth": True}
    with running_gateway(upstream_policy(upstream.base_url, server=server)) as gw:
        anonymous = httpx.get(f"{gw.url}/metrics")
        wrong = httpx.get(f"{gw.url}/metrics", headers={"authorization": "Bearer nope"})
        keyed = httpx.get(f"{gw.url}/metrics", headers={"authorization": "Bearer sk-gw"})
        healthz = httpx.get(f"{gw.url}/healthz")
    assert anonymous.status_code == 401 and _error(anonymous)["type"] == "authentication_error"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert keyed.status_code == 200 and "bitrate_requests_total" in keyed.text
    assert healthz.status_code == 200


def test_metrics_stay_open_by_default_even_with_keys(monkeypatch: pytest.MonkeyPatch, upstream: FaultServer):
    monkeypatch.setenv("LIFECYCLE_KEYS", "sk-gw")
    with running_gateway(upstream_policy(upstream.base_url, server={"api_keys_env": "LIFECYCLE_KEYS"})) as gw:
        assert httpx.get(f"{gw.url}/metrics").status_code == 200


def test_metrics_auth_without_keys_is_a_config_error(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nmodels:\n  m: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        "server:\n  metrics_auth: true\n"
    )
    with pytest.raises(ConfigError, match="metrics_auth"):
        load_policy(path)


# ------------------------------------------------------------------ helpers


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    """``read()`` again every 50 ms until ``done`` says so; the last value, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout:g}s")
        time.sleep(0.05)
