"""Readiness from cached backend health: a background probe, and which routes can still serve.

:class:`HealthProbe` checks every backend (``Engine.health``: all at once, each check bounded)
once at startup, then every ``server.health_interval`` seconds in a background task.
``/readyz`` answers from the last round at once: a probe never waits on a backend, and an
anonymous caller never makes the gateway call one.

A backend is *up* when its last check passed and its circuit breaker is not open. A route is

============  =========================================================================
``ok``        its student and its frontier are up
``degraded``  a side is down, and the route's ``fallback`` sends that side's requests to
              the other side, which is up (``student_error: frontier``; ``frontier_error:
              student``, which still keeps unsafe and frontier-pinned tasks where they are)
``down``      a side is down with no fallback to an up side: some of its requests fail
============  =========================================================================

The gateway is ready (200, ``"status": "ok"``) when no route is down; with no routes at all,
when some backend is up. Otherwise 503, ``"status": "unavailable"``. The body::

    {"status": "ok",
     "backends": {"student": {"healthy": false, "checked_at": "2025-06-01T12:00:00+00:00",
                              "circuit": "closed"}, "frontier": {...}},
     "routes": {"auto": "degraded"}}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sdk.policy import Policy, RouteConfig

__all__ = ["BackendHealth", "HealthProbe", "RouteStatus", "readiness", "route_status"]

RouteStatus = Literal["ok", "degraded", "down"]


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """One backend's last health check."""

    healthy: bool
    """Whether the check passed."""
    checked_at: datetime
    """When it finished (UTC)."""


class HealthProbe:
    """Each backend's health, checked in the background every ``interval`` seconds."""

    def __init__(self, check: Callable[[], Awaitable[Mapping[str, bool]]], interval: float):
        """``check``: one round over every backend (``Engine.health``); it never raises."""
        self.interval = interval
        self.results: dict[str, BackendHealth] = {}
        """The last round, by backend name (empty until :meth:`start`)."""
        self._check = check
        self._task: asyncio.Task[None] | None = None

    async def probe(self) -> None:
        """Run one round now."""
        health = await self._check()
        at = datetime.now(UTC)
        self.results = {name: BackendHealth(ok, at) for name, ok in health.items()}

    async def start(self) -> None:
        """Run the first round (the app is not served before it is known), then go on in the background."""
        await self.probe()
        self._task = asyncio.get_running_loop().create_task(self._every_interval(), name="bitrate-health")

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.probe()

    async def aclose(self) -> None:
        """Stop the background task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])


def route_status(route: RouteConfig, up: Callable[[str], bool]) -> RouteStatus:
    """How ``route`` can serve when ``up(model)`` says which of its models are up."""
    student, frontier = up(route.student), up(route.frontier)
    if student and frontier:
        return "ok"
    student_served = student or (frontier and route.fallback.student_error == "frontier")
    frontier_served = frontier or (student and route.fallback.frontier_error == "student")
    return "degraded" if student_served and frontier_served else "down"


def readiness(
    policy: Policy, health: Mapping[str, BackendHealth], circuits: Mapping[str, str]
) -> tuple[bool, bytes]:
    """``(ready, body)`` from the last health round and the circuit states (``closed``,
    ``open``, ``half_open``) by model name."""

    def up(name: str) -> bool:
        checked = health.get(name)
        return checked is not None and checked.healthy and circuits.get(name) != "open"

    routes = {name: route_status(route, up) for name, route in policy.routes.items()}
    ready = "down" not in routes.values() if routes else any(up(name) for name in policy.models)
    backends = {
        name: {
            "healthy": checked.healthy if checked else None,
            "checked_at": checked.checked_at.isoformat(timespec="seconds") if checked else None,
            "circuit": circuits.get(name, "closed"),
        }
        for name in policy.models
        for checked in [health.get(name)]
    }
    body = {"status": "ok" if ready else "unavailable", "backends": backends, "routes": routes}
    return ready, json.dumps(body).encode()
