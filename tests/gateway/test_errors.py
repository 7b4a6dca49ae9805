"""Every error status, raised as the official client's matching exception, in the OpenAI body format.

The gateway runs in-process (:mod:`tests.support.inprocess`); its upstream is a real fault server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from sdk.policy import ServerSettings
from tests.gateway.conftest import upstream_policy
from tests.support.fault_server import FaultServer, Hang, Status, fault_server, refused_url
from tests.support.inprocess import InProcess, inprocess_gateway

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


@pytest.fixture
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
async def gateway(upstream: FaultServer) -> AsyncIterator[InProcess]:
    settings = ServerSettings(max_body_bytes=4096, request_timeout=2.0)
    async with inprocess_gateway(upstream_policy(upstream.base_url, timeout=1.0), settings) as gateway:
        yield gateway


def _error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


async def test_malformed_json_is_400(gateway: InProcess):
    response = await gateway.http.post(CHAT, content=b'{"model": "auto", "mess')
    assert response.status_code == 400
    assert _error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"temperature": 5}, "temperature"), ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"n": 0}, "n")],
)
async def test_invalid_field_is_400_naming_the_field(gateway: InProcess, extra: dict, param: str):
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(model="auto", messages=HI, **extra)
    assert caught.value.status_code == 400
    assert caught.value.param == param and caught.value.type == "invalid_request_error"


async def test_invalid_nested_field_names_its_path(gateway: InProcess):
    response = await gateway.http.post(
        CHAT,
        json={
            "model": "auto",
            "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
        },
    )
    assert response.status_code == 400
    assert _error_of(response)["param"] == "messages[1].role"


async def test_unknown_model_is_404(gateway: InProcess):
    with pytest.raises(openai.NotFoundError) as caught:
        await gateway.openai().chat.completions.create(model="gpt-nope", messages=HI)
    assert caught.value.code == "model_not_found" and "gpt-nope" in caught.value.message


async def test_unknown_path_is_404_in_openai_format(gateway: InProcess):
    response = await gateway.http.get("/v1/embeddings")
    assert response.status_code == 404 and _error_of(response)["type"] == "not_found_error"


async def test_body_over_the_limit_is_413_by_length_and_by_counting(gateway: InProcess):
    big = b'{"model": "auto", "messages": [], "pad": "' + b"x" * 5000 + b'"}'
    declared = await gateway.http.post(CHAT, content=big)
    assert declared.status_code == 413 and _error_of(declared)["code"] == "payload_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the gateway must count
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    counted = await gateway.http.post(CHAT, content=chunked())
    assert counted.status_code == 413


async def test_upstream_5xx_is_502_naming_the_backend(gateway: InProcess, upstream: FaultServer):
    upstream.script(Status(500))
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.openai().chat.completions.create(model="student", messages=HI)
    assert caught.value.status_code == 502
    assert "'student'" in caught.value.message


async def test_upstream_caller_fault_passes_through_as_its_4xx(gateway: InProcess, upstream: FaultServer):
    upstream.script(Status(400, message="bad thing"))
    with pytest.raises(openai.BadRequestError) as caught:
        await gateway.openai().chat.completions.create(model="student", messages=HI)
    assert "bad thing" in caught.value.message


async def test_upstream_timeout_is_504(gateway: InProcess, upstream: FaultServer):
    upstream.script(Hang(seconds=5))
    with pytest.raises(openai.APIStatusError) as caught:
        await gateway.openai().chat.completions.create(model="frontier", messages=HI)
    assert caught.value.status_code == 504 and "'frontier'" in caught.value.message


async def test_request_timeout_is_504(upstream: FaultServer):
    upstream.script(Hang(seconds=5))
    policy = upstream_policy(upstream.base_url, timeout=30.0, server={"request_timeout": 0.5})
    async with inprocess_gateway(policy) as gateway:
        response = await gateway.http.post(CHAT, json={"model": "student", "messages": HI})
    assert response.status_code == 504 and _error_of(response)["type"] == "timeout_error"


async def test_unreachable_backend_is_503_and_not_ready():
    with refused_url() as url:
        async with inprocess_gateway(upstream_policy(url)) as gateway:
            with pytest.raises(openai.APIStatusError) as caught:
                await gateway.openai().chat.completions.create(model="student", messages=HI)
            ready = await gateway.http.get("/readyz")
    assert caught.value.status_code == 503 and "'student'" in caught.value.message
    assert ready.status_code == 503


async def test_api_keys(monkeypatch: pytest.MonkeyPatch, upstream: FaultServer):
    monkeypatch.setenv("GATEWAY_KEYS", "sk-one, sk-two")
    policy = upstream_policy(upstream.base_url, server={"api_keys_env": "GATEWAY_KEYS"})
    async with inprocess_gateway(policy) as gateway:
        with pytest.raises(openai.AuthenticationError) as caught:
            await gateway.openai(key="sk-wrong").chat.completions.create(model="student", messages=HI)
        anonymous = await gateway.http.get("/v1/models")
        answer = await gateway.openai(key="sk-two").chat.completions.create(model="student", messages=HI)
        health = await gateway.http.get("/healthz")
    assert caught.value.status_code == 401 and "sk-wrong" not in caught.value.message
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert answer.choices[0].message.content
    assert health.status_code == 200
    assert all("sk-" not in r.headers.get("authorization", "") for r in upstream.requests)
