"""What the gateway records of each chat call: its request id, its log line and its span.

A :class:`ChatCall` is made when a chat call arrives: it takes the caller's ``x-request-id`` when
plausible, or makes one (``sdk.request_context``), keeps it in the ASGI scope for every answer's
``x-request-id`` header (:func:`request_id_header`), and sets it, with the call's span when tracing is
on (``sdk.tracing``), for the engine and the backends while the handler runs. When the call ends (a
stream: once its last byte is sent) it writes one line at INFO on the ``bitrate.requests`` logger::

    request_id=5f0e...01 route=auto task=translation target=student status=200 latency_ms=41.2
    prompt_tokens=12 completion_tokens=30 stream=false reason="student: translation is safe ..."

(one line), and never the prompt nor the answer (``server.log_bodies`` logs those, apart). Values are
written as they are when plain, else JSON-quoted (a caller's text cannot start a line of its own),
and cut at :data:`MAX_VALUE` characters. :class:`JsonFormatter` writes any record as one JSON object,
a request line's pairs as its keys (``bitrate serve --log-format json``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from sdk import tracing
from sdk.decision import Decision
from sdk.errors import BitrateError
from sdk.headers import REQUEST_ID_HEADER
from sdk.protocol import ChatCompletion, ChatRequest, Usage
from sdk.request_context import REQUEST_ID, request_id_from

__all__ = ["REQUEST_ID_KEY", "ChatCall", "Fields", "JsonFormatter", "request_id_header"]

log = logging.getLogger("bitrate.requests")

REQUEST_ID_KEY = "bitrate.request_id"
"""Where a request's id is kept in its ASGI scope."""
MAX_VALUE = 256
"""Longest value written in a log line (a model name is the caller's to choose)."""
_PLAIN = re.compile(r"[A-Za-z0-9_.:/+@-]+")
_ESCAPES = {c: f"\\u{c:04x}" for c in (*range(32), 127, 0x85, 0x2028, 0x2029)}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord('"'): '\\"', ord("\\"): "\\\\"}
"""What a quoted value escapes: quotes, backslashes, and whatever a reader could take for a line end."""
_ID_HEADER = REQUEST_ID_HEADER.encode()


def request_id_header(scope: MutableMapping[str, Any], headers: Mapping[str, str]) -> tuple[bytes, bytes]:
    """The ``x-request-id`` answer header of the request in ``scope`` (its id made now if need be)."""
    request_id = scope.get(REQUEST_ID_KEY)
    if request_id is None:
        request_id = scope[REQUEST_ID_KEY] = request_id_from(headers.get(REQUEST_ID_HEADER))
    return _ID_HEADER, request_id.encode()


class Fields(dict[str, Any]):
    """A log record's message made of named values: ``key=value`` pairs as text."""

    def __str__(self) -> str:
        return " ".join([f"{key}={_value(value)}" for key, value in self.items()])


def _value(value: Any, plain: Callable[[str], object] = _PLAIN.fullmatch) -> str:
    kind = type(value)
    if kind is str:
        text = value if len(value) <= MAX_VALUE else value[:MAX_VALUE]
    elif kind is bool:
        return "true" if value else "false"
    elif kind is int or kind is float:
        return str(value)
    else:
        text = str(value)[:MAX_VALUE]
    return text if plain(text) else f'"{text.translate(_ESCAPES)}"'


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC), ``level``, ``logger``, ``message``, and a request
    line's fields (:class:`Fields`) as keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, Fields) and not record.args:
            data["message"] = "request"
            data.update({k: v[:MAX_VALUE] if isinstance(v, str) else v for k, v in record.msg.items()})
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class ChatCall:
    """One chat call at the gateway, from its arrival to its log line (see the module docstring)."""

    __slots__ = ("_token", "request_id", "span", "started")

    def __init__(self, scope: MutableMapping[str, Any], headers: Mapping[str, str]):
        self.started = time.perf_counter()
        """When the call arrived (``time.perf_counter()``)."""
        self.request_id: str = request_id_from(headers.get(REQUEST_ID_HEADER))
        """The call's id: the caller's ``x-request-id`` when plausible, else a new one."""
        scope[REQUEST_ID_KEY] = self.request_id
        self.span: tracing.RequestSpan | None = None
        """The call's span (``None`` when tracing is off)."""
        if tracing.tracer() is not None:
            attributes = {"http.request.method": scope.get("method", "POST"), "url.path": scope.get("path")}
            self.span = tracing.start_request(
                server=True, carrier=headers, request_id=self.request_id, attributes=attributes
            )
        self._token = REQUEST_ID.set(self.request_id)
        if self.span is not None:
            self.span.enter()

    @property
    def id_header(self) -> tuple[bytes, bytes]:
        """The ``x-request-id`` answer header."""
        return _ID_HEADER, self.request_id.encode()

    def leave(self) -> None:
        """The handler returns: the id and the span stop being the current ones (a stream's span
        stays open until :meth:`answered`)."""
        if self.span is not None:
            self.span.leave()
        REQUEST_ID.reset(self._token)

    def requested(self, chat: ChatRequest) -> None:
        """The body is decoded: the span learns the model and the parameters."""
        if self.span is not None:
            self.span.requested(chat)

    def answered(
        self,
        decision: Decision,
        status: int,
        usage: Usage | None,
        *,
        stream: bool,
        completion: ChatCompletion | None = None,
    ) -> None:
        """The answer is out (a stream's last byte, or its failure: ``status``)."""
        latency = time.perf_counter() - self.started
        if self.span is not None:
            attributes = tracing.completion_attributes(completion) if completion else {}
            attributes.update(tracing.usage_attributes(usage))
            attributes["http.response.status_code"] = status
            self.span.end(decision, attributes=attributes)
        if log.isEnabledFor(logging.INFO):
            fields = Fields(request_id=self.request_id, route=decision.route, task=decision.task)
            fields.update(target=decision.target, status=status, latency_ms=round(latency * 1000, 1))
            if usage is not None:
                fields.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
            fields["stream"] = stream
            if decision.fallback_from:
                fields["fallback_from"] = decision.fallback_from
            if decision.escalated:
                fields["escalated"] = True
            fields["reason"] = decision.reason
            log.info(fields)

    def failed(self, chat: ChatRequest | None, status: int, error: BitrateError | None) -> None:
        """The call ended without an answer: ``error`` (``None``: the client left, status 499)."""
        latency = time.perf_counter() - self.started
        if self.span is not None:
            self.span.end(attributes={"http.response.status_code": status}, error=error)
        if log.isEnabledFor(logging.INFO):
            route = chat.model if chat is not None else "-"
            fields = Fields(request_id=self.request_id, route=route, status=status)
            fields["latency_ms"] = round(latency * 1000, 1)
            fields["stream"] = bool(chat and chat.stream)
            fields["error"] = error.code or error.type if error is not None else "client_gone"
            log.info(fields)
