"""The one place that turns failures into OpenAI error bodies.

Every error answer is ``{"error": {"message", "type", "param", "code"}}`` with the
status the official ``openai`` client maps to its matching exception class:

==========================================  ======  ===============================
failure                                     status  client exception
==========================================  ======  ===============================
malformed JSON, invalid field (``param``)   400     ``BadRequestError``
missing or wrong API key                    401     ``AuthenticationError``
unknown model / path                        404     ``NotFoundError``
body over the limit                         413     ``APIStatusError``
upstream 400/413/422: the request is wrong  4xx     the matching 4xx class
backend failed / unavailable / timed out    502/503/504 ``InternalServerError``
a bug in bitrate                            500     ``InternalServerError``
==========================================  ======  ===============================

``install(app)`` registers the handlers, including FastAPI's request-validation
error (normally a 422) and Starlette's routing errors, so nothing leaves the
gateway in another shape. A 500 never carries a traceback; it is logged instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.request_log import REQUEST_ID_KEY, request_id_header
from sdk.errors import (
    AuthError,
    BitrateError,
    InternalError,
    InvalidRequest,
    RequestTimeout,
    UnknownPath,
    UpstreamStatusError,
)

__all__ = [
    "InternalErrorBoundary",
    "encode_error",
    "error_response",
    "from_validation_error",
    "install",
    "on_bitrate_error",
    "status_of",
]

log = logging.getLogger("bitrate.gateway")

# Pieces of a pydantic ``loc`` that name a union member or validator, not a field.
_TYPE_TAG = re.compile(r"[\[\-]|^(str|int|float|bool|dict|list|none|tagged-union)$")


def status_of(exc: BitrateError) -> int:
    """The HTTP status for ``exc``; an upstream's caller-fault 4xx passes through."""
    if isinstance(exc, UpstreamStatusError) and exc.is_caller_fault:
        return exc.upstream_status
    return exc.status


def encode_error(exc: BitrateError) -> bytes:
    """The OpenAI error body for ``exc`` as JSON bytes (also used for SSE error events)."""
    return _dumps(exc.to_body())


def error_response(exc: BitrateError, headers: dict[str, str] | None = None) -> Response:
    """A JSON error response for ``exc`` with its status."""
    extra = dict(headers or {})
    if isinstance(exc, AuthError):
        extra["www-authenticate"] = "Bearer"
    if isinstance(exc, RequestTimeout):
        extra["connection"] = "close"  # the rest of a body that came too slowly is not read
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        extra["retry-after"] = str(int(retry_after))
    return Response(
        encode_error(exc), status_code=status_of(exc), headers=extra, media_type="application/json"
    )


def param_of(loc: Sequence[int | str]) -> str | None:
    """A pydantic ``loc`` as an OpenAI ``param`` path: ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _TYPE_TAG.search(part):
            break
        else:
            out += f".{part}" if out else part
    return out or None


def from_validation_error(exc: ValidationError, *, skip: int = 0) -> InvalidRequest:
    """The 400 for a request body pydantic rejected: first error, its field path as ``param``.

    ``skip`` drops leading ``loc`` parts (FastAPI prefixes ``body``)."""
    errors = exc.errors(include_url=False, include_input=False)
    return _invalid_from(errors, skip=skip)


def _invalid_from(errors: Sequence[Any], *, skip: int) -> InvalidRequest:
    if not errors:
        return InvalidRequest("invalid request body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        return InvalidRequest(f"malformed JSON: {first.get('msg', '')}", code="invalid_json")
    param = param_of(tuple(first.get("loc", ()))[skip:])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"'{param}': " if param else ""
    return InvalidRequest(f"{where}{first.get('msg', 'invalid value')}{more}", param=param)


async def on_bitrate_error(request: Request, exc: Exception) -> Response:
    """The answer to a ``BitrateError``: its OpenAI error body and status (5xx logged)."""
    assert isinstance(exc, BitrateError)
    if exc.status >= 500 and not isinstance(exc, UpstreamStatusError):
        log.warning("%s %s -> %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(_invalid_from(list(exc.errors()), skip=1))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: BitrateError = UnknownPath(f"no such path: {request.url.path}")
    else:
        err = InvalidRequest(str(exc.detail), code=f"http_{exc.status_code}")
        err.status = exc.status_code
    return error_response(err, headers=dict(exc.headers or {}))


class InternalErrorBoundary:
    """Pure ASGI middleware, the one place a bug is caught: it is logged with its traceback and
    answered as a bare 500 in the OpenAI format. (Starlette's own last-resort handler re-raises
    after answering, and uvicorn then resets the connection before the client reads the 500.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the boundary for bugs (see the class docstring)
            log.error("internal error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            error = error_response(InternalError("internal error in the bitrate gateway"))
            if REQUEST_ID_KEY in scope:  # the chat call had its id: the answer carries it
                error.raw_headers.append(request_id_header(scope, {}))
            await error(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register every error handler on ``app``."""
    app.add_exception_handler(BitrateError, on_bitrate_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_middleware(InternalErrorBoundary)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
