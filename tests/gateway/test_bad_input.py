"""Bad input never breaks the gateway: property tests over POST /v1/chat/completions, and explicit cases.

The gateway's backends are a fault server answering well, so a valid request is
cheap. Whatever the body (random JSON, chat-shaped bodies with wrong types and
absurd values, raw bytes, invalid UTF-8), the answer is never a 5xx, and every
rejection is a 4xx with the OpenAI error body ``{"error": {message, type, param, code}}``.
Hypothesis runs derandomized (stable in CI) with no deadline; the three property
tests make 1,000 requests together. The gateway runs in-process (:mod:`tests.support.inprocess`),
one per test, shared by that test's examples.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sdk.policy import ServerSettings
from tests.gateway.conftest import upstream_policy
from tests.support.fault_server import FaultServer, fault_server
from tests.support.inprocess import InProcess, inprocess_gateway

LIMIT = 64 * 1024
"""The gateway's ``max_body_bytes`` in this module."""

PROPERTY = settings(
    derandomize=True,
    deadline=None,
    database=None,
    # the gateway fixture is shared by a test's examples on purpose (no state is kept between them)
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
async def gateway(upstream: FaultServer) -> AsyncIterator[InProcess]:
    settings_ = ServerSettings(max_body_bytes=LIMIT, request_timeout=10.0)
    async with inprocess_gateway(upstream_policy(upstream.base_url), settings_) as gateway:
        yield gateway


@pytest.fixture
def http(gateway: InProcess) -> httpx.AsyncClient:
    return gateway.http


async def post(
    http: httpx.AsyncClient, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        "/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **(headers or {})},
    )


def check(response: httpx.Response) -> None:
    """No 5xx; a rejection is a 4xx in the OpenAI shape; an answer is a completion or a full stream."""
    status = response.status_code
    assert status < 500, response.text
    if status >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and error["message"]
        assert error["param"] is None or isinstance(error["param"], str)
        return
    assert status == 200
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]
    else:
        assert response.json()["object"] == "chat.completion"


def checked(response: httpx.Response) -> None:
    """``check`` inside a property test, counting statuses (``--hypothesis-show-statistics``)."""
    event(f"status {response.status_code}")
    check(response)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# --------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 10**12, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
roles = st.one_of(
    st.sampled_from(["system", "user", "assistant", "tool", "developer", "robot", ""]), json_values
)
contents = st.one_of(
    st.text(max_size=50),
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "image_url", "audio", "nope"])},
            optional={"text": json_values, "image_url": json_values},
        ),
        max_size=3,
    ),
    json_values,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "role": roles,
        "content": contents,
        "name": json_values,
        "tool_calls": json_values,
        "tool_call_id": json_values,
    },
)
OPTIONAL_FIELDS = {
    "temperature": st.one_of(st.floats(-5, 5), json_values),
    "top_p": st.one_of(st.floats(-1, 2), json_values),
    "max_tokens": st.one_of(st.sampled_from([1, 16, 0, -5, 10**12, 10**30]), json_values),
    "max_completion_tokens": st.one_of(st.integers(-5, 10**12), json_values),
    "n": st.one_of(st.integers(-2, 40), json_values),
    "stop": st.one_of(st.lists(st.text(max_size=5), max_size=6), json_values),
    "seed": json_values,
    "stream": st.one_of(st.booleans(), json_values),
    "stream_options": st.one_of(st.fixed_dictionaries({"include_usage": st.booleans()}), json_values),
    "logprobs": json_values,
    "top_logprobs": st.one_of(st.integers(-2, 30), json_values),
    "response_format": st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])}),
        json_values,
    ),
    "tools": json_values,
    "tool_choice": json_values,
    "user": json_values,
    "metadata": json_values,
    "bitrate": json_values,
    "unknown_field": json_values,
}
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.sampled_from(["auto", "student", "frontier", "nope", ""]), json_values),
        "messages": st.one_of(st.lists(messages, max_size=3), json_values),
        **OPTIONAL_FIELDS,
    },
)
valid_messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant", "developer"]),
            "content": st.text(max_size=40),
        }
    ),
    min_size=1,
    max_size=3,
)
VALID_FIELDS = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0.01, 1),
    "max_tokens": st.integers(1, 10**12),
    "n": st.integers(1, 16),
    "stop": st.lists(st.text(max_size=5), max_size=4),
    "seed": st.integers(-(2**63), 2**63 - 1),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "user": st.text(max_size=10),
    "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
}
near_valid_bodies = st.fixed_dictionaries(
    {"model": st.sampled_from(["auto", "student", "frontier"]), "messages": valid_messages},
    optional={**VALID_FIELDS, "unknown_field": json_values},
)
"""Mostly valid requests (answered 200, JSON or a stream), so the happy path is fuzzed too."""
hints = st.one_of(st.none(), st.from_regex(r"[!-~]([ -~]{0,18}[!-~])?", fullmatch=True))


# --------------------------------------------------------------------------- properties


@settings(PROPERTY, max_examples=500)
@given(body=st.one_of(chat_bodies, near_valid_bodies), hint=hints)
async def test_chat_shaped_bodies_never_5xx(http: httpx.AsyncClient, body: dict[str, Any], hint: str | None):
    checked(await post(http, dumps(body), {"x-bitrate-task": hint} if hint is not None else None))


@settings(PROPERTY, max_examples=300)
@given(body=json_values)
async def test_any_json_never_5xx(http: httpx.AsyncClient, body: Any):
    checked(await post(http, dumps(body)))


@settings(PROPERTY, max_examples=200)
@given(prefix=st.binary(max_size=40), junk=st.binary(min_size=1, max_size=20), cut=st.integers(0, 60))
async def test_raw_bytes_never_5xx(http: httpx.AsyncClient, prefix: bytes, junk: bytes, cut: int):
    valid = dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    checked(await post(http, prefix))
    checked(await post(http, valid[:cut] + junk + valid[cut:]))


# --------------------------------------------------------------------------- explicit cases

HI = [{"role": "user", "content": "hi"}]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    check(response)
    return response.json()["error"]


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient):
    big = dumps({"model": "auto", "messages": [{"role": "user", "content": "x" * LIMIT}]})
    assert error_of(await post(http, big), 413)["code"] == "payload_too_large"


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient):
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    response = await http.post("/v1/chat/completions", content=parts())
    assert error_of(response, 413)["code"] == "payload_too_large"


async def test_body_over_the_limit_via_the_official_client(gateway: InProcess):
    client = gateway.openai(key="x")
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x" * LIMIT}]
        )
    assert caught.value.status_code == 413


@pytest.mark.parametrize("depth", [64, 1_000, 20_000])
async def test_deeply_nested_json_is_400(http: httpx.AsyncClient, depth: int):
    nested = b"[" * depth + b"]" * depth
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + nested + b"}"
    assert error_of(await post(http, body), 400)["type"] == "invalid_request_error"
    assert error_of(await post(http, b"{" * depth), 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"caf\xe9"],
    ids=["bom-ish", "bad-continuation", "surrogate", "latin-1"],
)
async def test_invalid_utf8_is_400(http: httpx.AsyncClient, content: bytes):
    body = b'{"model": "auto", "messages": [{"role": "user", "content": "' + content + b'"}]}'
    assert error_of(await post(http, body), 400)["code"] == "invalid_json"


@pytest.mark.parametrize("value", [10**12, 10**30])
async def test_absurd_max_tokens_is_refused_or_bounded(http: httpx.AsyncClient, value: int):
    response = await post(http, dumps({"model": "auto", "messages": HI, "max_tokens": value}))
    check(response)
    if response.status_code >= 400:
        assert response.json()["error"]["param"] == "max_tokens"


@pytest.mark.parametrize("value", [0, -1, "ten", 1.5, None])
async def test_bad_max_tokens_is_400_naming_it(http: httpx.AsyncClient, value: Any):
    response = await post(http, dumps({"model": "auto", "messages": HI, "max_tokens": value}))
    if value is None:  # JSON null: the same as leaving it out
        assert response.status_code == 200
        return
    assert error_of(response, 400)["param"] == "max_tokens"


async def test_unknown_role_is_400_naming_it(http: httpx.AsyncClient):
    body = {"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}
    assert error_of(await post(http, dumps(body)), 400)["param"] == "messages[0].role"


async def test_empty_messages_is_400_naming_them(http: httpx.AsyncClient):
    assert error_of(await post(http, dumps({"model": "auto", "messages": []})), 400)["param"] == "messages"


@pytest.mark.parametrize(
    "body",
    [
        {"model": "auto", "messages": [], "stream": True},
        {"model": "auto", "messages": "hi", "stream": True},
        {"model": "auto", "messages": HI, "stream": True, "temperature": 9},
        {"model": "auto", "messages": HI, "stream": "yes please"},
        {"messages": HI, "stream": True},
    ],
)
async def test_stream_with_a_bad_body_is_a_json_400_not_a_stream(
    http: httpx.AsyncClient, body: dict[str, Any]
):
    response = await post(http, dumps(body))
    assert response.headers["content-type"].startswith("application/json")
    error_of(response, 400)


@pytest.mark.parametrize(
    "content",
    [b"", b"null", b"[]", b'"text"', b"42", b"NaN", b'{"model": "auto", "messages": [' + b"1" * 5000],
)
async def test_not_an_object_is_400(http: httpx.AsyncClient, content: bytes):
    error_of(await post(http, content), 400)


@pytest.mark.parametrize(
    "extra", [{"temperature": float("nan")}, {"temperature": float("inf")}, {"top_p": 10**400}]
)
async def test_non_finite_and_huge_numbers_are_400(http: httpx.AsyncClient, extra: dict[str, Any]):
    error_of(await post(http, dumps({"model": "auto", "messages": HI, **extra})), 400)


async def test_wrong_method_and_content_type_stay_in_shape(http: httpx.AsyncClient):
    check(await http.get("/v1/chat/completions"))
    assert (await http.get("/v1/chat/completions")).status_code == 405
    response = await http.post(
        "/v1/chat/completions",
        content=dumps({"model": "auto", "messages": HI}),
        headers={"content-type": "text/plain"},
    )
    check(response)
