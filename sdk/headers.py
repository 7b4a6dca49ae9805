"""The ``x-bitrate-*`` HTTP header names, defined once for the gateway and the in-process client."""

from __future__ import annotations

from typing import Final

__all__ = ["REASON_HEADER", "ROUTE_HEADER", "TARGET_HEADER", "TASK_HEADER"]

ROUTE_HEADER: Final = "x-bitrate-route"
"""On every answer: the name the caller sent as ``model`` (a route or a direct model)."""
TARGET_HEADER: Final = "x-bitrate-target"
"""On every answer: the policy model that served it."""
TASK_HEADER: Final = "x-bitrate-task"
"""On a request: the caller's task hint. On every answer: the detected task category."""
REASON_HEADER: Final = "x-bitrate-reason"
"""On every answer: why the request went where it went, in one line."""
