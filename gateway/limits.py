"""Request body limits: 413 before reading a body declared too large, and while
reading one that turns out too large (chunked, or a lying Content-Length); 408 for
a body that does not arrive in time (a client trickling bytes holds a connection
and a task for as long as it is let)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from gateway.deadlines import Deadlines
from sdk.errors import InvalidRequest, PayloadTooLarge, RequestTimeout

__all__ = ["read_body", "read_body_within"]


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes; raise ``PayloadTooLarge`` beyond."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    receive = request.receive  # straight from ASGI: Request.stream()'s generator costs ~3 us a call
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
        if not message.get("more_body", False):
            break
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    request._body = body  # what Request.body() would cache, should anything read it again
    return body


async def read_body_within(request: Request, limit: int, seconds: float, deadlines: Deadlines) -> bytes:
    """:func:`read_body`, in at most ``seconds``; raise ``RequestTimeout`` (408) past them."""
    try:
        return await deadlines.run(seconds, read_body(request, limit))
    except TimeoutError as exc:
        raise RequestTimeout(f"request body not received within {seconds:g}s") from exc
