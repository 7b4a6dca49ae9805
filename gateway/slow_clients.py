"""A deadline on a request's line and headers, which uvicorn does not bound.

uvicorn parses requests in an ``asyncio.Protocol`` (httptools or h11) and starts the app
only once a request's headers are complete. Until then no timer runs: its keep-alive timer
covers the idle gap between requests and stops at the first byte of the next one, so a
client that sends its headers a byte at a time (or nothing at all) holds the connection as
long as it likes. :func:`with_header_deadline` subclasses the protocol: a timer starts when
a connection opens, and when a later request's first bytes arrive without its headers being
complete; it stops when they are. When it fires, the client gets a 408 with the OpenAI error
body and the connection is closed.

Both protocols keep the request being answered in ``self.cycle`` and replace it when a new
request's headers are complete: that change is what stops the timer. The usual request, whose
headers come in one read, costs no timer at all after its connection's first.
(A request's body has its own limit, in the app: ``gateway.limits``.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from gateway.errors import encode_error
from sdk.errors import RequestTimeout

__all__ = ["http_protocol", "with_header_deadline"]


class _HeaderDeadline(asyncio.Protocol):
    """Mixed in before a uvicorn HTTP protocol (see the module docstring)."""

    header_timeout: float = 10.0
    """Seconds a request's line and headers may take."""
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        awaiting_headers = cycle is None or cycle.response_complete
        super().data_received(data)
        if self.cycle is not cycle:
            self._stop_header_timer()  # the headers are complete
        elif awaiting_headers and self._header_timer is None:
            self._start_header_timer()  # a later request began and is not complete yet

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        timer, self._header_timer = self._header_timer, None
        if timer is not None:
            timer.cancel()

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(_timeout_answer(self.header_timeout))
            self.transport.close()


def _timeout_answer(seconds: float) -> bytes:
    body = encode_error(RequestTimeout(f"request headers not received within {seconds:g}s"))
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


def with_header_deadline(protocol: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """``protocol`` (uvicorn's ``HttpToolsProtocol`` or ``H11Protocol``) with a ``seconds`` deadline
    on each request's line and headers."""
    name = f"HeaderDeadline{protocol.__name__}"
    return type(name, (_HeaderDeadline, protocol), {"header_timeout": seconds})


def http_protocol(name: str, header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``name`` (``httptools`` or ``h11``) with the header deadline,
    for ``uvicorn.Config(http=...)``."""
    return with_header_deadline(import_from_string(HTTP_PROTOCOLS[name]), header_timeout)
