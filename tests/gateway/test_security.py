"""Security: API keys on every /v1 route, probe exposure as a setting, and nothing leaked.

- With ``server.api_keys_env`` set, every ``/v1`` route refuses a missing or wrong key
  with a 401 in the OpenAI shape (the official client raises ``AuthenticationError``),
  before the body is read.
- ``/metrics`` and ``/readyz`` are served or hidden as the settings say; ``/healthz`` is open.
- A real ``bitrate serve`` subprocess at debug log level is driven through failures whose
  upstream error bodies echo the upstream API key; its whole log output and ``/metrics``
  must hold neither that key, nor the gateway's own keys, nor the prompt; no answer a key.
  (The fault matrix, ``test_faults.py``, checks the in-process logs and answers of every case.)

The key and probe checks call the gateway in-process (:mod:`tests.support.inprocess`); the
leak checks need the real process, its log output and its sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from sdk.errors import ConfigError
from sdk.policy import ServerSettings
from tests.gateway.conftest import upstream_policy
from tests.gateway.test_faults import EchoKeyStatus, EchoKeyStreamError
from tests.gateway.test_shutdown import subprocess_gateway, upstream_models
from tests.support.fault_server import FaultServer, Ok, Status, fault_server, refused_url
from tests.support.inprocess import InProcess, inprocess_gateway

KEYS_ENV = "BITRATE_TEST_GATEWAY_KEYS"
KEYS = ("gw-key-one-4c1d", "gw-key-two-88aa")
UPSTREAM_ENV = "BITRATE_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-upstream-SECRET-a71c39"
CANARY = "canary-prompt-0d5e6b"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
async def gateway(upstream: FaultServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InProcess]:
    """The gateway in-process, with the keys :data:`KEYS`."""
    monkeypatch.setenv(KEYS_ENV, ",".join(KEYS))
    settings = ServerSettings(api_keys_env=KEYS_ENV, max_body_bytes=4096)
    async with inprocess_gateway(upstream_policy(upstream.base_url), settings) as gateway:
        yield gateway


ROUTES = [
    ("POST", "/v1/chat/completions", {"model": "auto", "messages": HI}),
    ("POST", "/v1/chat/completions", {"model": "auto", "messages": HI, "stream": True}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/models/auto", None),
]
ROUTE_IDS = ["chat", "chat-stream", "models", "model"]
BAD_AUTH = {
    "missing": None,
    "wrong": "Bearer gw-key-WRONG-canary",
    "empty": "Bearer",
    "basic": f"Basic {KEYS[0]}",
    "prefix": f"Bearer {KEYS[0][:-1]}",
    "longer": f"Bearer {KEYS[0]}x",
    "both": f"Bearer {KEYS[0]},{KEYS[1]}",
}


async def _send(gateway: InProcess, method: str, path: str, body: Any, auth: str | None) -> httpx.Response:
    headers = {"authorization": auth} if auth is not None else {}
    return await gateway.http.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("auth", list(BAD_AUTH.values()), ids=list(BAD_AUTH))
async def test_every_v1_route_refuses_a_missing_or_wrong_key(
    gateway: InProcess, method: str, path: str, body: Any, auth: str | None
):
    response = await _send(gateway, method, path, body, auth)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert not any(k in response.text for k in (*KEYS, "WRONG")), "the answer echoes no key"


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("key", KEYS)
async def test_every_v1_route_accepts_each_configured_key(
    gateway: InProcess, method: str, path: str, body: Any, key: str
):
    assert (await _send(gateway, method, path, body, f"Bearer {key}")).status_code == 200
    assert (await _send(gateway, method, path, body, f"bearer {key}")).status_code == 200


async def test_the_official_client_raises_authentication_error(gateway: InProcess):
    client = gateway.openai(key="gw-key-wrong")
    calls = [
        lambda: client.chat.completions.create(model="auto", messages=HI),
        lambda: client.chat.completions.create(model="auto", messages=HI, stream=True),
        lambda: client.models.list(),
        lambda: client.models.retrieve("auto"),
    ]
    for call in calls:
        with pytest.raises(openai.AuthenticationError) as caught:
            await call()
        assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    good = gateway.openai(key=KEYS[1])
    assert (await good.chat.completions.create(model="auto", messages=HI)).choices[0].message.content


async def test_the_key_is_checked_before_the_body_is_read(gateway: InProcess, upstream: FaultServer):
    seen = len(upstream.chat_requests)
    url = "/v1/chat/completions"
    assert (await gateway.http.post(url, content=b'{"model": "auto", "mess')).status_code == 401
    assert (await gateway.http.post(url, content=b"x" * 100_000)).status_code == 401
    assert (await gateway.http.post(url, json={"model": "nope", "messages": HI})).status_code == 401
    assert len(upstream.chat_requests) == seen, "nothing unauthenticated reaches an upstream"


def test_an_unset_keys_variable_refuses_to_start(upstream: FaultServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("BITRATE_TEST_UNSET_KEYS", raising=False)
    with pytest.raises(ConfigError, match="BITRATE_TEST_UNSET_KEYS"):
        create_app(upstream_policy(upstream.base_url), ServerSettings(api_keys_env="BITRATE_TEST_UNSET_KEYS"))


@pytest.mark.parametrize("exposed", [True, False])
async def test_probes_and_metrics_follow_the_settings(upstream: FaultServer, exposed: bool):
    settings = ServerSettings(expose_metrics=exposed, expose_readyz=exposed)
    async with inprocess_gateway(upstream_policy(upstream.base_url), settings) as gateway:
        assert (await gateway.http.get("/healthz")).status_code == 200
        for path in ("/metrics", "/readyz"):
            response = await gateway.http.get(path)
            assert response.status_code == (200 if exposed else 404), path
            if not exposed:
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --------------------------------------------------------------------------- nothing leaks


def _leaks(text: str, *, prompt: bool = True) -> list[str]:
    """The secrets in ``text``: keys, and the prompt unless ``prompt=False``."""
    return [s for s in (UPSTREAM_KEY, *KEYS, *([CANARY] if prompt else [])) if s in text]


def _ask(url: str, model: str, *, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": f"{CANARY} hello"}], "stream": stream}
    headers = {"authorization": f"Bearer {KEYS[0]}"}
    return httpx.post(f"{url}/v1/chat/completions", json={**body, **extra}, headers=headers, timeout=30)


def _drive(url: str, upstream: FaultServer) -> list[httpx.Response]:
    """Requests that succeed, fail upstream (echoing the key), fail validation, fail auth
    (``max_retries: 0``: each scripted fault answers one call)."""
    upstream.script(
        Ok(),
        EchoKeyStatus(500),  # direct call: a 502
        EchoKeyStatus(400),  # the caller's fault: passed through as a 400
        EchoKeyStreamError(),  # a stream that breaks mid-way
        Status(503, message=f"overloaded while serving {CANARY}"),  # echoes the prompt: not for the log
    )
    wrong = {"authorization": f"Bearer {CANARY}"}
    return [
        _ask(url, "auto"),
        _ask(url, "student"),
        _ask(url, "student"),
        _ask(url, "student", stream=True),
        _ask(url, "student"),
        _ask(url, "dead"),
        _ask(url, "auto", temperature=CANARY),
        _ask(url, "nope-" + "x"),
        httpx.post(f"{url}/v1/chat/completions", json={"model": "auto", "messages": HI}, headers=wrong),
    ]


@dataclass
class Driven:
    """What a real ``bitrate serve`` showed while driven through failures."""

    answers: list[httpx.Response]
    metrics: str
    output: str
    upstream_auth: list[str | None]


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> Driven:
    tmp_path = tmp_path_factory.mktemp("leaks")
    env = {UPSTREAM_ENV: UPSTREAM_KEY, KEYS_ENV: ",".join(KEYS)}
    with fault_server() as upstream, refused_url() as dead:
        policy = upstream_models(upstream.base_url, api_key_env=UPSTREAM_ENV)
        policy["models"]["dead"] = {**policy["models"]["student"], "base_url": dead}
        policy["server"] = {"api_keys_env": KEYS_ENV}
        with subprocess_gateway(policy, tmp_path, env=env, log_level="debug") as gateway:
            answers = _drive(gateway.url, upstream)
            metrics = httpx.get(f"{gateway.url}/metrics").text
        auth = [r.headers.get("authorization") for r in upstream.chat_requests]
        return Driven(answers, metrics, gateway.output, auth)


def test_the_drive_did_what_it_meant(driven: Driven):
    assert driven.upstream_auth and set(driven.upstream_auth) == {f"Bearer {UPSTREAM_KEY}"}
    statuses = [r.status_code for r in driven.answers]
    assert statuses == [200, 502, 400, 200, 502, 503, 400, 404, 401], statuses
    assert "backend 'dead'" in driven.output, "the capture sees the gateway's own warnings"
    assert "bitrate_requests_total" in driven.metrics


def test_answers_hold_no_key(driven: Driven):
    # An upstream message may quote the prompt back to the caller who sent it; never a key.
    for answer in driven.answers:
        leaks = _leaks(answer.text, prompt=False)
        assert not leaks, f"an answer leaked {leaks}: {answer.text[:300]}"


def test_metrics_hold_no_key_and_no_prompt(driven: Driven):
    assert not _leaks(driven.metrics)


def test_the_log_holds_no_key_and_no_prompt(driven: Driven):
    assert not _leaks(driven.output), f"the log leaked {_leaks(driven.output)}:\n{driven.output}"


def test_request_bodies_are_logged_only_when_asked(tmp_path: Path):
    env = {UPSTREAM_ENV: UPSTREAM_KEY, KEYS_ENV: ",".join(KEYS)}
    with fault_server() as upstream:
        policy = upstream_models(upstream.base_url, api_key_env=UPSTREAM_ENV)
        policy["server"] = {"api_keys_env": KEYS_ENV, "log_bodies": True}
        with subprocess_gateway(policy, tmp_path, env=env, log_level="debug") as gateway:
            assert _ask(gateway.url, "student").status_code == 200
        output = gateway.output
    assert CANARY in output, "log_bodies: true logs the request (so the leak test above can see one)"
    assert UPSTREAM_KEY not in output and not any(k in output for k in KEYS)
