"""Thin HTTP routes: decode, call the engine, encode. Nothing about routing lives here.

They are plain Starlette routes (:data:`ROUTES`), not FastAPI path operations:
FastAPI's per-request dependency machinery cost 2.4x the requests per second
on a trivial endpoint here (wrk: 4,000 vs 9,300 rps), and these handlers need none
of it. The body is read once under the size and time limits and validated once by
pydantic straight from JSON bytes; answers are encoded once by pydantic-core
straight to bytes. The errors they raise reach the app's handlers (``gateway.errors``).

A chat call is cancelled when its client leaves (counted as 499) and answered with a 503
when the stopping server cancels it (``gateway.cancellation``).

A request may name its task in the header ``x-bitrate-task`` (a hint for the engine); a hint
that is not a task name (``sdk.detect.hint``: too long, other characters) is a 400 naming it.

Each chat call is a :class:`~gateway.request_log.ChatCall`: its ``x-request-id`` (the caller's or a
new one) goes out on the answer, success or error, and upstream; its log line and its span end with
the answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive

from gateway.cancellation import shutting_down, until_disconnect
from gateway.errors import from_validation_error, status_of
from gateway.limits import read_body_within
from gateway.metrics import CONTENT_TYPE
from gateway.request_log import ChatCall
from gateway.sse_response import SSEResponse
from gateway.state import Gateway, route_headers
from sdk.detect.hint import checked_hint
from sdk.errors import BackendTimeout, BitrateError, UnknownModel, UnknownPath
from sdk.headers import REQUEST_ID_HEADER, TASK_HEADER
from sdk.protocol import ChatCompletion, ChatRequest

__all__ = ["ROUTES", "decode_chat"]

log = logging.getLogger("bitrate.gateway")
T = TypeVar("T")

_JSON = "application/json"
_completion_json = ChatCompletion.__pydantic_serializer__.to_json
_OK = b'{"status":"ok"}'
_CLIENT_GONE = Response(status_code=499)
"""What a request whose client left "answers": nobody reads it; the status is nginx's 499."""


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def decode_chat(body: bytes) -> ChatRequest:
    """Validate a chat-completions body; malformed JSON or a bad field is a 400 naming the field."""
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc


async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions: JSON, or server-sent events with ``stream: true``."""
    gw = _gateway(request)
    call = ChatCall(request.scope, request.headers)
    chat: ChatRequest | None = None
    try:
        try:
            gw.keys.check(request.headers.get("authorization"))
            chat = decode_chat(await _read_body(gw, request))
            call.requested(chat)
            return await _answer(gw, request, chat, call)
        except asyncio.CancelledError:  # the stopping server cancelled this request (see the docstring)
            raise shutting_down() from None
    except BitrateError as exc:
        status = status_of(exc)
        gw.metrics.failed(chat.model if chat else None, status, time.perf_counter() - call.started)
        call.failed(chat, status, exc)
        raise
    except ClientDisconnect:
        gw.metrics.failed(chat.model if chat else None, 499, time.perf_counter() - call.started)
        call.failed(chat, 499, None)
        return _CLIENT_GONE
    finally:
        call.leave()


def _read_body(gw: Gateway, request: Request) -> Awaitable[bytes]:
    settings = gw.settings
    seconds = min(settings.body_timeout, settings.request_timeout)
    return read_body_within(request, settings.max_body_bytes, seconds, gw.deadlines)


async def _answer(gw: Gateway, request: Request, chat: ChatRequest, call: ChatCall) -> Response:
    if gw.settings.log_bodies:
        log.info("request body: %s", chat.model_dump_json(exclude_unset=True))
    hint = checked_hint(request.headers.get(TASK_HEADER))  # 400 for a hint no task could be named
    if chat.stream:
        return await _stream(gw, chat, hint, call, request.receive)
    return await _complete(gw, chat, hint, call, request.receive)


class _RoutedJSON(Response):
    """A 200 JSON answer with the decision's ``x-bitrate-*`` headers, encoded once per decision
    (Starlette's ``Response`` re-encodes every header of every answer)."""

    def __init__(
        self, body: bytes, route_headers: list[tuple[bytes, bytes]], request_id: tuple[bytes, bytes]
    ):
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            *route_headers,
            request_id,
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]


async def _complete(
    gw: Gateway, chat: ChatRequest, hint: str | None, call: ChatCall, receive: Receive
) -> Response:
    answer = until_disconnect(receive, gw.engine.complete(chat, task_hint=hint))
    completion, decision = await _within_deadline(gw, chat, answer, call.started)
    body = _completion_json(completion)
    if gw.settings.log_bodies:
        log.info("response body: %s", body.decode())
    usage = completion.usage
    gw.metrics.answered(decision, 200, time.perf_counter() - call.started, usage, stream=False)
    call.answered(decision, 200, usage, stream=False, completion=completion)
    return _RoutedJSON(body, gw.raw_route_headers(decision), call.id_header)


async def _stream(
    gw: Gateway, chat: ChatRequest, hint: str | None, call: ChatCall, receive: Receive
) -> SSEResponse:
    opening = until_disconnect(receive, gw.engine.stream(chat, task_hint=hint))
    routed = await _within_deadline(gw, chat, opening, call.started)

    def closed(response: SSEResponse) -> None:
        gw.stream_closed(response)
        call.answered(response.routed.decision, response.status, response.usage, stream=True)

    return SSEResponse(
        routed,
        headers={**route_headers(routed.decision), REQUEST_ID_HEADER: call.request_id},
        timeout=gw.settings.request_timeout,
        started=call.started,
        on_close=closed,
        deadlines=gw.deadlines,
    )


async def _within_deadline(gw: Gateway, chat: ChatRequest, call: Awaitable[T], started: float) -> T:
    """``call`` within ``request_timeout`` of ``started``; past it, a 504 naming the model the
    caller asked for."""
    limit = gw.settings.request_timeout
    try:
        return await gw.deadlines.run(limit - (time.perf_counter() - started), call)
    except TimeoutError as exc:
        raise BackendTimeout(f"no answer within {limit:g}s", backend=chat.model) from exc


async def list_models(request: Request) -> Response:
    """Routes and direct models, in the OpenAI list format."""
    gw = _gateway(request)
    gw.keys.check(request.headers.get("authorization"))
    return Response(gw.models_body, media_type=_JSON)


async def get_model(request: Request) -> Response:
    """One route or model, in the OpenAI model format."""
    gw = _gateway(request)
    gw.keys.check(request.headers.get("authorization"))
    name = request.path_params["name"]
    body = gw.model_bodies.get(name)
    if body is None:
        raise UnknownModel(f"no route or model named '{name}'", param="model")
    return Response(body, media_type=_JSON)


async def healthz(_request: Request) -> Response:
    """Alive: the process answers."""
    return Response(_OK, media_type=_JSON)


async def readyz(request: Request) -> Response:
    """Ready: every route can still serve, by the last background health check (503 otherwise);
    the body reports each backend and route (``gateway.readiness``)."""
    gw = _gateway(request)
    if not gw.settings.expose_readyz:
        raise UnknownPath("no such path: /readyz")
    ready, body = gw.readiness()
    return Response(body, status_code=200 if ready else 503, media_type=_JSON)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this gateway's registry."""
    gw = _gateway(request)
    if not gw.settings.expose_metrics:
        raise UnknownPath("no such path: /metrics")
    if gw.settings.metrics_auth:
        gw.keys.check(request.headers.get("authorization"))
    return Response(gw.metrics.render(), media_type=CONTENT_TYPE)


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{name}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
"""The gateway's routes, appended to the app's router by ``create_app``."""
