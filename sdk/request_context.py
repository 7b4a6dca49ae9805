"""What travels with one chat call into the backends: its request id and, with tracing on, its trace.

The gateway takes the caller's ``x-request-id`` when it is a plausible id (:func:`request_id_from`:
1 to 128 of the characters ``A-Z a-z 0-9 - _ . : / + = @``) and makes one otherwise; ``sdk.Client``
makes one per call, or takes ``extra_headers={"x-request-id": ...}`` the same way. While the call
runs, :data:`REQUEST_ID` holds it (a context variable: each request's task sees its own), and the
``openai`` backend sends it upstream with :func:`upstream_headers`, together with the W3C trace
context when tracing is on (``sdk.tracing``), so the upstream's logs and traces join ours.

A made id is 32 hex digits: a random prefix drawn once per process, then a counter (a tenth of the
cost of ``uuid4`` on the hot path, and unique across replicas all the same).
"""

from __future__ import annotations

import itertools
import os
import re
from contextvars import ContextVar

from sdk import tracing
from sdk.headers import REQUEST_ID_HEADER

__all__ = ["MAX_REQUEST_ID", "REQUEST_ID", "new_request_id", "request_id_from", "upstream_headers"]

MAX_REQUEST_ID = 128
"""Longest caller's request id kept; a longer one is replaced."""
_PLAUSIBLE = re.compile(rf"[A-Za-z0-9._:/+=@-]{{1,{MAX_REQUEST_ID}}}")

REQUEST_ID: ContextVar[str | None] = ContextVar("bitrate_request_id", default=None)
"""The id of the chat call running in this context (``None`` outside one)."""


class _Ids:
    """Made request ids: a per-process random prefix (drawn on first use), then a counter."""

    def __init__(self) -> None:
        self._prefix: str | None = None
        self._count = itertools.count(1)

    def __call__(self) -> str:
        if self._prefix is None:
            self._prefix = os.urandom(8).hex()
        return f"{self._prefix}{next(self._count):016x}"


new_request_id = _Ids()
"""``new_request_id()``: a fresh id (32 hex digits)."""


def request_id_from(value: str | None) -> str:
    """The caller's id when it is plausible (see the module docstring), else a fresh one: an id
    goes into logs and upstream headers, so nothing else a caller sends is passed on."""
    if value and _PLAUSIBLE.fullmatch(value):
        return value
    return new_request_id()


def upstream_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` for one upstream request: with ``x-request-id`` (and, with tracing on, the trace
    context) of the call in progress; ``headers`` itself, not a copy, when there is nothing to add."""
    request_id = REQUEST_ID.get()
    if request_id is None and tracing.tracer() is None:
        return headers
    out = dict(headers)
    if request_id is not None:
        out[REQUEST_ID_HEADER] = request_id
    tracing.inject(out)
    return out
