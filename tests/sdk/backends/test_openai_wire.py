"""Request building and response parsing for OpenAI-compatible APIs (no I/O)."""

from __future__ import annotations

import json

import pytest

from sdk.backends.config import OpenAIConfig
from sdk.backends.openai_wire import (
    build_request,
    check_stream_headers,
    error_from_status,
    error_message,
    parse_completion,
)
from sdk.errors import BackendError
from sdk.protocol import ChatRequest

CONFIG = OpenAIConfig(
    backend="openai", base_url="https://api.example.com/v1/", model="big-model", headers={"X-Org": "acme"}
)
JSON = {"content-type": "application/json"}


def request(**fields) -> ChatRequest:
    return ChatRequest(model="auto", messages=[{"role": "user", "content": "hi"}], **fields)


def test_request_body_replaces_model_keeps_unknown_fields_and_drops_bitrate_options():
    req = request(temperature=0.2, reasoning_effort="low", bitrate={"task": "code"})
    prepared = build_request(CONFIG, req, "sk-key", stream=False)
    body = json.loads(prepared.content)
    assert prepared.method == "POST"
    assert prepared.url == "https://api.example.com/v1/chat/completions"
    assert body == {
        "model": "big-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "reasoning_effort": "low",
        "stream": False,
    }


def test_headers_carry_the_key_and_configured_extras_but_repr_does_not():
    prepared = build_request(CONFIG, request(), "sk-key", stream=True)
    assert prepared.headers["authorization"] == "Bearer sk-key"
    assert prepared.headers["x-org"] == "acme"
    assert prepared.headers["accept"] == "text/event-stream"
    assert "sk-key" not in repr(prepared)


def test_no_key_no_authorization_header():
    assert "authorization" not in build_request(CONFIG, request(), None, stream=False).headers


def test_stream_flag_follows_the_call():
    req = request(stream=True, stream_options={"include_usage": True})
    assert json.loads(build_request(CONFIG, req, None, stream=True).content)["stream_options"] == {
        "include_usage": True
    }
    plain = json.loads(build_request(CONFIG, req, None, stream=False).content)
    assert plain["stream"] is False
    assert "stream_options" not in plain


def test_parse_completion_keeps_extras():
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "big-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"}, "finish_reason": "stop"}],
        "system_fingerprint": "fp",
    }
    headers = {"Content-Type": "application/json; charset=utf-8"}
    completion = parse_completion(headers, json.dumps(body).encode(), "f")
    assert completion.choices[0].message.content == "yo"
    assert completion.model_extra == {"system_fingerprint": "fp"}


@pytest.mark.parametrize(
    ("headers", "content", "why"),
    [
        ({"content-type": "text/html"}, b"<html/>", "content type 'text/html'"),
        ({}, b"{}", "content type 'missing'"),
        (JSON, b"{oops", "invalid JSON"),
        (JSON, b'{"id": 1}', "not a chat completion"),
        (JSON, b"[1, 2]", "not a chat completion"),
    ],
)
def test_malformed_answers(headers, content, why):
    with pytest.raises(BackendError, match=f"backend 'f': malformed response: {why}") as info:
        parse_completion(headers, content, "f")
    assert info.value.code == "bad_upstream_response"


def test_error_from_status_reads_openai_error_body_request_id_and_retry_after():
    body = json.dumps({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}).encode()
    error = error_from_status(429, {"X-Request-Id": "req-9", "Retry-After": "3"}, body, "f")
    assert error.upstream_status == 429
    assert error.request_id == "req-9"
    assert error.retry_after == 3.0
    assert not error.is_caller_fault
    assert "Rate limit reached" in str(error) and "req-9" in str(error)


def test_error_message_variants_and_truncation():
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert error_message(b'{"error": "plain string"}') == "plain string"
    assert error_message(b"") == "(empty body)"
    long = error_message(b"x" * 5000)
    assert len(long) < 400 and long.endswith("...")


def test_the_key_echoed_by_an_upstream_is_scrubbed():
    body = json.dumps({"error": {"message": "Incorrect API key provided: sk-secret-1"}}).encode()
    error = error_from_status(401, {}, body, "f", secret="sk-secret-1")
    assert "sk-secret-1" not in str(error)
    assert not error.is_caller_fault  # a refused key is the gateway's fault, not the caller's


def test_stream_must_be_event_stream():
    check_stream_headers({"content-type": "text/event-stream; charset=utf-8"}, "f")
    with pytest.raises(BackendError, match="expected text/event-stream"):
        check_stream_headers({"content-type": "application/json"}, "f")
