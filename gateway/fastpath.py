"""The hot path's shortcut past the framework: ``POST /v1/chat/completions`` straight to its handler.

FastAPI wraps every request in seven layers (server-error, telemetry, body-limit and
exception middleware, an exit stack, the router, Starlette's request/response wrapper);
on a proxied chat call they cost about as much CPU as routing itself (py-spy: ~14% of
the event loop at saturation). :class:`GatewayApp` sends chat calls past them, keeping
what they did for this route:

- ``InternalErrorBoundary`` (a bug is logged and answered as a bare 500), as on the ordinary path;
- a ``BitrateError`` becomes its OpenAI error answer through the ordinary path's handler.

Every answer carries ``x-request-id`` (``gateway.request_log``): a chat call's handler puts it on its
own answers, this shortcut on an error answer; on the ordinary path, :class:`GatewayApp` adds it to any
answer that lacks it (a wrapped ``send``: ~2 us, which the shortcut does not pay).

The shortcut is taken only while the app's middleware is exactly what
``gateway.errors.install`` added; an app given more middleware (or mounted under a
root path) takes the ordinary path for every request.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway.errors import InternalErrorBoundary, on_bitrate_error
from gateway.request_log import request_id_header
from gateway.routes import chat_completions
from sdk.errors import BitrateError

__all__ = ["CHAT_PATH", "GatewayApp"]

CHAT_PATH = "/v1/chat/completions"
"""The one path the shortcut serves (POST)."""


async def _chat(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    try:
        response = await chat_completions(request)
    except BitrateError as exc:
        response = await on_bitrate_error(request, exc)
        response.raw_headers.append(request_id_header(scope, request.headers))
    await response(scope, receive, send)


_CHAT = InternalErrorBoundary(_chat)


class GatewayApp(FastAPI):
    """A FastAPI app whose chat-completions calls skip the framework's layers (see above)."""

    def _shortcut(self, scope: Scope) -> bool:
        middleware = self.user_middleware
        return (
            scope["type"] == "http"
            and scope["path"] == CHAT_PATH
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not self.root_path
            and len(middleware) == 1
            and middleware[0].cls is InternalErrorBoundary
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._shortcut(scope):
            scope["app"] = self
            await _CHAT(scope, receive, send)
            return
        if scope["type"] == "http":
            send = _with_request_id(scope, send)
        await super().__call__(scope, receive, send)


def _with_request_id(scope: Scope, send: Send) -> Send:
    """``send`` adding the request's ``x-request-id`` to an answer that has none yet."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            name, value = request_id_header(scope, Headers(scope=scope))
            if all(key.lower() != name for key, _ in headers):
                message = {**message, "headers": [*headers, (name, value)]}
        await send(message)

    return sending
