"""The HTTP header names bitrate reads and writes, defined once for the gateway and the in-process
client, and the ``x-bitrate-*`` headers of an answer (:func:`route_headers`)."""

from __future__ import annotations

from typing import Final

from sdk.decision import Decision

__all__ = [
    "REASON_HEADER",
    "REQUEST_ID_HEADER",
    "ROUTE_HEADER",
    "TARGET_HEADER",
    "TASK_HEADER",
    "ascii_header",
    "route_headers",
]

ROUTE_HEADER: Final = "x-bitrate-route"
"""On every answer: the name the caller sent as ``model`` (a route or a direct model)."""
TARGET_HEADER: Final = "x-bitrate-target"
"""On every answer: the policy model that served it."""
TASK_HEADER: Final = "x-bitrate-task"
"""On a request: the caller's task hint. On every answer: the detected task category."""
REASON_HEADER: Final = "x-bitrate-reason"
"""On every answer: why the request went where it went, in one line."""
REQUEST_ID_HEADER: Final = "x-request-id"
"""On a request: the caller's id for it (kept when plausible, see ``sdk.request_context``). On every
answer of the gateway, and on each request the ``openai`` backend sends upstream: the id in use."""


def ascii_header(value: str) -> str:
    """``value`` made safe for an HTTP header: printable ASCII, anything else as ``?``."""
    if value.isascii() and value.isprintable():
        return value
    return "".join(c if " " <= c <= "~" else "?" for c in value)


def route_headers(decision: Decision) -> dict[str, str]:
    """The ``x-bitrate-*`` headers every answer carries."""
    return {
        ROUTE_HEADER: ascii_header(decision.route),
        TARGET_HEADER: ascii_header(decision.target),
        TASK_HEADER: ascii_header(decision.task),
        REASON_HEADER: ascii_header(decision.reason),
    }
