"""Building requests for and reading answers from an OpenAI-compatible API: plain functions.

No I/O here: the backend (``openai_http``) sends, these functions say what to send
and what the answer means, so a future pass-through path can reuse them. Every
error raised names the backend and never contains the API key.

- :func:`build_request`: method, URL, headers and JSON body of one call.
- :func:`parse_completion`: a 2xx body -> :class:`~sdk.protocol.ChatCompletion`.
- :func:`error_from_status`: a >= 400 answer -> :class:`~sdk.errors.UpstreamStatusError`.
- :func:`check_stream_headers`: a 2xx stream answer must be ``text/event-stream``.
- :func:`parse_chunk`: one SSE ``data`` payload -> :class:`~sdk.protocol.ChatCompletionChunk`.

Upstream text (an error message, a request id) enters our errors only through
:func:`sdk.backends.scrub.scrub`: the key taken out first, then cut short.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sdk.backends.config import OpenAIConfig
from sdk.backends.retry import parse_retry_after
from sdk.backends.scrub import scrub
from sdk.errors import BackendError, UpstreamStatusError
from sdk.protocol import ChatCompletion, ChatCompletionChunk, ChatRequest
from sdk.request_context import upstream_headers

__all__ = [
    "MALFORMED",
    "PreparedRequest",
    "build_request",
    "check_stream_headers",
    "error_from_status",
    "malformed",
    "parse_chunk",
    "parse_completion",
]

MALFORMED = "bad_upstream_response"
"""Error code of an upstream 2xx answer we cannot read."""

MAX_REQUEST_ID = 100
"""Longest upstream request id kept in our error messages."""

USER_AGENT = "bitrate/0.1"


@dataclass(frozen=True)
class PreparedRequest:
    """One HTTP call, ready to send with any client."""

    method: str
    """``POST`` or ``GET``."""
    url: str
    """Absolute URL."""
    headers: dict[str, str]
    """Request headers, ``Authorization`` included when a key is set (never log them)."""
    content: bytes
    """The JSON body, encoded."""

    def __repr__(self) -> str:  # headers hold the key: keep them out of reprs and logs
        return f"PreparedRequest({self.method} {self.url}, {len(self.content)} bytes)"


def endpoint(config: OpenAIConfig, path: str) -> str:
    """``base_url`` joined with ``path`` (one slash between them)."""
    return f"{config.base_url.rstrip('/')}/{path.lstrip('/')}"


def build_headers(config: OpenAIConfig, api_key: str | None, *, stream: bool) -> dict[str, str]:
    """Headers for a call: the configured extras, then JSON/SSE and the bearer key."""
    headers = {"user-agent": USER_AGENT, **{k.lower(): v for k, v in config.headers.items()}}
    headers["content-type"] = "application/json"
    headers["accept"] = "text/event-stream" if stream else "application/json"
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def build_request(
    config: OpenAIConfig,
    request: ChatRequest,
    api_key: str | None,
    *,
    stream: bool,
    headers: dict[str, str] | None = None,
) -> PreparedRequest:
    """``POST {base_url}/chat/completions`` for ``request``, with the backend's model name.

    Unknown request fields pass through; ``stream`` is forced to match the call,
    and ``stream_options`` is dropped from a non-streaming call (OpenAI rejects it).
    ``headers``: what :func:`build_headers` gives for these arguments, when the caller
    keeps them (a backend builds its two sets once). The call's ``x-request-id`` (and trace
    context) is added to them (``sdk.request_context.upstream_headers``).
    """
    content = request.upstream_json(config.model, stream=stream)
    if headers is None:
        headers = build_headers(config, api_key, stream=stream)
    return PreparedRequest("POST", endpoint(config, "chat/completions"), upstream_headers(headers), content)


def malformed(backend: str, why: str, *, secret: str | None = None) -> BackendError:
    """The error for an upstream 2xx answer that is not what the API promises; ``why`` may
    quote the upstream, so it is scrubbed of ``secret`` and cut short."""
    return BackendError(f"malformed response: {scrub(why, secret)}", backend=backend, code=MALFORMED)


def _media_type(headers: Mapping[str, str]) -> str:
    """The ``content-type`` without its parameters, as sent (compare it lower-cased)."""
    value = headers.get("content-type")  # httpx's Headers: case-insensitive, no copy
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    return value.split(";")[0].strip()


def _wrong_type(backend: str, sent: str, expected: str, secret: str | None) -> BackendError:
    return malformed(backend, f"content type {sent or 'missing'!r}, expected {expected}", secret=secret)


def _load_json(content: bytes, backend: str, secret: str | None = None) -> Any:
    try:
        return json.loads(content)
    except (UnicodeDecodeError, ValueError) as exc:
        raise malformed(backend, f"invalid JSON ({exc})", secret=secret) from exc


def parse_completion(
    headers: Mapping[str, str], content: bytes, backend: str, *, secret: str | None = None
) -> ChatCompletion:
    """A 2xx non-streaming answer as a :class:`ChatCompletion`, or a ``malformed response``
    error (``secret`` scrubbed from what it quotes)."""
    sent = _media_type(headers)
    kind = sent.lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise _wrong_type(backend, sent, "application/json", secret)
    try:  # one pass in pydantic-core, straight from bytes (no json.loads, no dict walk)
        return ChatCompletion.model_validate_json(content)
    except ValidationError as exc:
        _load_json(content, backend, secret)  # invalid JSON gets its own message
        raise malformed(backend, f"not a chat completion ({_first_error(exc)})", secret=secret) from exc


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def error_message(content: bytes, secret: str | None = None) -> str:
    """The upstream's own words, scrubbed of ``secret`` and cut short: ``error.message`` of an
    OpenAI error body, a FastAPI ``detail``, or the start of the raw text."""
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        data = None
    message = _message_of(data) if data is not None else None
    if message is None:
        message = content.decode("utf-8", errors="replace").strip() or "(empty body)"
    return scrub(message, secret)


def _message_of(data: Any) -> str | None:
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for key in ("error", "detail", "message"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def error_from_status(
    status: int, headers: Mapping[str, str], content: bytes, backend: str, *, secret: str | None = None
) -> UpstreamStatusError:
    """The error for an upstream answer with ``status >= 400``: its message, request id
    (``x-request-id``) and ``Retry-After``; ``secret`` is scrubbed from the message and the id."""
    lowered = {k.lower(): v for k, v in headers.items()}
    request_id = lowered.get("x-request-id")
    return UpstreamStatusError(
        error_message(content, secret),
        backend=backend,
        upstream_status=status,
        request_id=scrub(request_id, secret, MAX_REQUEST_ID) if request_id else None,
        retry_after=parse_retry_after(lowered),
    )


def check_stream_headers(headers: Mapping[str, str], backend: str, *, secret: str | None = None) -> None:
    """Raise ``malformed response`` unless a 2xx stream answer is ``text/event-stream``."""
    sent = _media_type(headers)
    if sent.lower() != "text/event-stream":
        raise _wrong_type(backend, sent, "text/event-stream", secret)


def parse_chunk(
    data: str, backend: str, *, event: str | None = None, secret: str | None = None
) -> ChatCompletionChunk:
    """One SSE ``data`` payload as a chunk. An ``error`` object (or an ``event: error``)
    raises: :class:`UpstreamStatusError` when it carries an HTTP status, else ``BackendError``;
    ``secret`` (the API key) is redacted from its message."""
    if event == "error":
        raise stream_error(_load_json(data.encode(), backend, secret), backend, secret=secret)
    try:  # one pass in pydantic-core, straight from the text
        chunk = ChatCompletionChunk.model_validate_json(data)
    except ValidationError as exc:
        payload = _load_json(data.encode(), backend, secret)  # invalid JSON gets its own message
        if isinstance(payload, dict) and "error" in payload:
            raise stream_error(payload, backend, secret=secret) from None
        why = f"not a chat completion chunk ({_first_error(exc)})"
        raise malformed(backend, why, secret=secret) from exc
    extra = chunk.model_extra
    if extra and "error" in extra:
        raise stream_error({"error": extra["error"]}, backend, secret=secret)
    return chunk


def stream_error(payload: Any, backend: str, *, secret: str | None = None) -> BackendError:
    """The error for an ``error`` object sent inside a stream (``secret`` redacted)."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    message = scrub(_message_of({"error": error}) or "unknown error", secret)
    status = _status_of(error)
    if status is not None:
        return UpstreamStatusError(f"error mid-stream: {message}", backend=backend, upstream_status=status)
    return BackendError(
        f"upstream error mid-stream: {message}", backend=backend, code="upstream_stream_error"
    )


def _status_of(error: Any) -> int | None:
    if not isinstance(error, dict):
        return None
    for key in ("status", "code", "status_code"):
        value = error.get(key)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    return None
