"""``bitrate profile live`` on the live store: what the gateways' monitors say now, and a person's
reset of a demotion.

The store is ``--store`` when given, else the policy's ``live.store`` (as ``bitrate profile
export`` finds it); it is only read, except by ``--reset``. Per route (``--route``: one) and per
category with live evidence: the offline verdict (the profile at the route's tolerance), the
live n, loss with its anytime-valid interval, breaks, fixes, live verdict, demoted since, the
grader(s) of the evidence and the shadow spend; per route the share of requests whose task was
not detected (novel traffic). The figures are each category's last record, written by a replica
at its last refresh (``live.refresh_seconds``) or verdict change. ``--json`` prints::

    {"store": LOCATION,
     "routes": {ROUTE: {"max_loss", "confidence", "requests", "undetected", "novel_share",
                        "categories": {NAME: {"offline", "n", "loss", "loss_low", "loss_high",
                                              "breaks", "fixes", "verdict", "demoted_since",
                                              "graders", "shadow_spend", "reset_by", "reset_at"}}}}}

``--reset ROUTE:CATEGORY`` writes a fresh monitor for that category to the store (the
demotion, and the evidence before it, set aside); every replica applies it at its next refresh.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sdk.decision import Verdict
from sdk.engine import Engine
from sdk.errors import ConfigError, UnknownModel
from sdk.live import LiveMonitor, LiveSnapshot, MonitorRecord, ObservationStore
from sdk.live.runtime import counter_labels, monitor_settings, reset_record
from sdk.policy import Policy

__all__ = ["RouteView", "read_routes", "reset_category", "routes_json", "when"]


@dataclass
class RouteView:
    """One route's live figures as the store holds them."""

    name: str
    max_loss: float
    confidence: float
    offline: dict[str, Verdict]
    snapshots: dict[str, LiveSnapshot] = field(default_factory=dict)
    records: dict[str, MonitorRecord] = field(default_factory=dict)
    graders: dict[str, dict[str, int]] = field(default_factory=dict)
    spend: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    undetected: int = 0

    @property
    def novel_share(self) -> float | None:
        """Share of the route's requests whose task was not detected (all replicas, all time)."""
        return self.undetected / self.requests if self.requests else None


def when(seconds: float) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _routes(policy: Policy, route: str | None) -> list[str]:
    if route is None:
        return list(policy.routes)
    if route not in policy.routes:
        known = ", ".join(policy.routes) or "none"
        raise UnknownModel(f"no route named '{route}' in the policy (routes: {known})", param="route")
    return [route]


def read_routes(policy: Policy, store: ObservationStore, route: str | None = None) -> list[RouteView]:
    """Every route's (or ``route``'s) live figures from ``store``."""
    runtimes = Engine(policy).routes()
    counts = store.counts()
    views = []
    for name in _routes(policy, route):
        tol = policy.routes[name].tolerance
        offline = {cat: verdict.verdict for cat, verdict in runtimes[name].categories.items()}
        view = RouteView(name, tol.max_loss, tol.confidence, offline)
        for record in store.states(route=name):
            try:
                view.snapshots[record.category] = LiveMonitor.from_dict(record.state).snapshot()
            except ValueError:
                continue  # a state this bitrate cannot read: shown by the bitrate that wrote it
            view.records[record.category] = record
        _add_counts(view, counts)
        views.append(view)
    return views


def _add_counts(view: RouteView, counts: Mapping[str, int]) -> None:
    for name, value in counts.items():
        parsed = counter_labels(name)
        if parsed is None or not parsed[1] or parsed[1][0] != view.name:
            continue
        kind, (_route, *labels) = parsed
        if kind == "requests":
            view.requests = value
        elif kind == "undetected":
            view.undetected = value
        elif kind == "spend_micro" and len(labels) == 1:
            view.spend[labels[0]] = value / 1e6
        elif kind == "graded" and len(labels) == 2:
            view.graders.setdefault(labels[0], {})[labels[1]] = value


def graders_text(view: RouteView, category: str) -> str:
    """The graders of a category's evidence, most used first, e.g. ``agreement:normalised``."""
    found = sorted(view.graders.get(category, {}).items(), key=lambda item: -item[1])
    return ", ".join(name for name, _count in found) or "-"


def routes_json(location: str, views: list[RouteView]) -> dict[str, Any]:
    """The ``--json`` object (see the module docstring)."""
    routes = {}
    for view in views:
        categories = {}
        for name, s in view.snapshots.items():
            record = view.records[name]
            categories[name] = {
                "offline": view.offline.get(name, "unknown"),
                "n": s.n,
                "loss": s.loss,
                "loss_low": s.loss_low,
                "loss_high": s.loss_high,
                "breaks": s.breaks,
                "fixes": s.fixes,
                "verdict": s.verdict,
                "demoted_since": s.demoted_since,
                "graders": view.graders.get(name, {}),
                "shadow_spend": view.spend.get(name, 0.0),
                "reset_by": record.reset_by,
                "reset_at": record.reset_at,
            }
        routes[view.name] = {
            "max_loss": view.max_loss,
            "confidence": view.confidence,
            "requests": view.requests,
            "undetected": view.undetected,
            "novel_share": view.novel_share,
            "categories": categories,
        }
    return {"store": location, "routes": routes}


def reset_category(
    policy: Policy, store: ObservationStore, spec: str, *, by: str | None = None
) -> MonitorRecord:
    """Reset ``ROUTE:CATEGORY`` in ``store`` (see the module docstring); the record written."""
    route, sep, category = spec.partition(":")
    if not (sep and route and category):
        raise ConfigError(f"--reset takes ROUTE:CATEGORY, got {spec!r}", key="--reset")
    _routes(policy, route)
    settings = monitor_settings(policy)[route]
    record = reset_record(route, category, settings, through=store.last_id(), by=by or getpass.getuser())
    stored = store.put_state(record, expected=None)
    assert stored is not None  # an unconditional write always lands
    return stored
