"""Every error status, raised as the official client's matching exception, in the OpenAI body format."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from sdk.policy import ServerSettings
from tests.gateway.conftest import upstream_policy
from tests.support.fault_server import FaultServer, Hang, Status, fault_server, refused_url
from tests.support.gateway_server import RunningServer, running_gateway

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
def gateway(upstream: FaultServer) -> Iterator[RunningServer]:
    settings = ServerSettings(max_body_bytes=4096, request_timeout=2.0)
    with running_gateway(upstream_policy(upstream.base_url, timeout=1.0), settings) as server:
        yield server


def _error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_malformed_json_is_400(gateway: RunningServer):
    response = httpx.post(f"{gateway.base_url}/chat/completions", content=b'{"model": "auto", "mess')
    assert response.status_code == 400
    assert _error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"temperature": 5}, "temperature"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"n": 0}, "n")],
)
def test_invalid_field_is_400_naming_the_field(
    gateway: RunningServer, extra: dict, param: str, make_client: Callable[..., openai.OpenAI]
):
    with pytest.raises(openai.BadRequestError) as caught:
        make_client(gateway).chat.completions.create(model="auto", messages=HI, **extra)
    assert caught.value.status_code == 400
    assert caught.value.param == param and caught.value.type == "invalid_request_error"


def test_invalid_nested_field_names_its_path(gateway: RunningServer):
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
        },
    )
    assert response.status_code == 400
    assert _error_of(response)["param"] == "messages[1].role"


def test_unknown_model_is_404(gateway: RunningServer, make_client: Callable[..., openai.OpenAI]):
    with pytest.raises(openai.NotFoundError) as caught:
        make_client(gateway).chat.completions.create(model="gpt-nope", messages=HI)
    assert caught.value.code == "model_not_found" and "gpt-nope" in caught.value.message


def test_unknown_path_is_404_in_openai_format(gateway: RunningServer):
    response = httpx.get(f"{gateway.base_url}/embeddings")
    assert response.status_code == 404 and _error_of(response)["type"] == "not_found_error"


def test_body_over_the_limit_is_413_by_length_and_by_counting(gateway: RunningServer):
    big = b'{"model": "auto", "messages": [], "pad": "' + b"x" * 5000 + b'"}'
    declared = httpx.post(f"{gateway.base_url}/chat/completions", content=big)
    assert declared.status_code == 413 and _error_of(declared)["code"] == "payload_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the gateway must count
        yield from (big[i : i + 1000] for i in range(0, len(big), 1000))

    counted = httpx.post(f"{gateway.base_url}/chat/completions", content=chunked())
    assert counted.status_code == 413


def test_upstream_5xx_is_502_naming_the_backend(
    gateway: RunningServer, upstream: FaultServer, make_client: Callable[..., openai.OpenAI]
):
    upstream.script(Status(500))
    with pytest.raises(openai.APIStatusError) as caught:
        make_client(gateway).chat.completions.create(model="student", messages=HI)
    assert caught.value.status_code == 502
    assert "'student'" in caught.value.message


def test_upstream_caller_fault_passes_through_as_its_4xx(
    gateway: RunningServer, upstream: FaultServer, make_client: Callable[..., openai.OpenAI]
):
    upstream.script(Status(400, message="bad thing"))
    with pytest.raises(openai.BadRequestError) as caught:
        make_client(gateway).chat.completions.create(model="student", messages=HI)
    assert "bad thing" in caught.value.message


def test_upstream_timeout_is_504(
    gateway: RunningServer, upstream: FaultServer, make_client: Callable[..., openai.OpenAI]
):
    upstream.script(Hang(seconds=5))
    with pytest.raises(openai.APIStatusError) as caught:
        make_client(gateway).chat.completions.create(model="frontier", messages=HI)
    assert caught.value.status_code == 504 and "'frontier'" in caught.value.message


def test_request_timeout_is_504():
    with fault_server() as upstream:
        upstream.script(Hang(seconds=5))
        policy = upstream_policy(upstream.base_url, timeout=30.0, server={"request_timeout": 0.5})
        with running_gateway(policy) as gateway:
            response = httpx.post(
                f"{gateway.base_url}/chat/completions", json={"model": "student", "messages": HI}
            )
    assert response.status_code == 504 and _error_of(response)["type"] == "timeout_error"


def test_unreachable_backend_is_503_and_not_ready(make_client: Callable[..., openai.OpenAI]):
    with refused_url() as url, running_gateway(upstream_policy(url)) as gateway:
        with pytest.raises(openai.APIStatusError) as caught:
            make_client(gateway).chat.completions.create(model="student", messages=HI)
        ready = httpx.get(f"{gateway.url}/readyz")
    assert caught.value.status_code == 503 and "'student'" in caught.value.message
    assert ready.status_code == 503


def test_api_keys(
    monkeypatch: pytest.MonkeyPatch, upstream: FaultServer, make_client: Callable[..., openai.OpenAI]
):
    monkeypatch.setenv("GATEWAY_KEYS", "sk-one, sk-two")
    with running_gateway(
        upstream_policy(upstream.base_url, server={"api_keys_env": "GATEWAY_KEYS"})
    ) as gateway:
        with pytest.raises(openai.AuthenticationError) as caught:
            make_client(gateway, key="sk-wrong").chat.completions.create(model="student", messages=HI)
        anonymous = httpx.get(f"{gateway.base_url}/models")
        answer = make_client(gateway, key="sk-two").chat.completions.create(model="student", messages=HI)
        health = httpx.get(f"{gateway.url}/healthz")
    assert caught.value.status_code == 401 and "sk-wrong" not in caught.value.message
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert answer.choices[0].message.content
    assert health.status_code == 200
    assert all("sk-" not in r.headers.get("authorization", "") for r in upstream.requests)
