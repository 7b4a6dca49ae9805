"""Prometheus metrics, one registry per app (two gateways in one process never mix).

Series (all prefixed ``bitrate_``):

- ``requests_total{route,target,task,status}``: answers, by where they went and how they ended
  (``status`` is the HTTP status; ``499`` for a stream the client abandoned);
- ``request_seconds{route,target,stream}``: latency until the last byte;
- ``time_to_first_token_seconds{route,target}``: for streams, until the first chunk was sent;
- ``fallbacks_total{route,from_target,to_target}``, ``escalations_total{route,task}``;
- ``tokens_total{route,target,kind}`` with ``kind`` = ``prompt`` | ``completion``;
- ``cost_dollars_total{route,target}``: what the answers cost at the policy's prices;
- ``cost_saved_dollars_total{route,target}``: (route's frontier price - actual price) x tokens,
  the estimated saving against sending everything to the frontier.

Tokens and cost need ``usage``: streams count them only with ``stream_options.include_usage``.
Labels only take names from the policy; an unknown model name is counted as route ``-``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from sdk.backends.config import Price
from sdk.decision import Decision
from sdk.protocol import Usage

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
NONE = "-"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """The gateway's series and the prices needed to turn tokens into dollars."""

    def __init__(self, prices: Mapping[str, Price], frontier_of: Mapping[str, str]):
        """``prices``: model name -> price; ``frontier_of``: route name -> its frontier model."""
        self._prices = dict(prices)
        self._frontier_price = {r: self._prices[f] for r, f in frontier_of.items() if f in self._prices}
        self._known = frozenset(self._prices) | frozenset(frontier_of)
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        reg = self.registry
        self.requests = Counter(
            "bitrate_requests",
            "Answers by route, target, task and HTTP status.",
            ["route", "target", "task", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "bitrate_request_seconds",
            "Seconds until the last byte of the answer.",
            ["route", "target", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.ttft = Histogram(
            "bitrate_time_to_first_token_seconds",
            "Seconds until the first stream chunk was sent.",
            ["route", "target"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.fallbacks = Counter(
            "bitrate_fallbacks",
            "Requests answered by the other side after a backend failure.",
            ["route", "from_target", "to_target"],
            registry=reg,
        )
        self.escalations = Counter(
            "bitrate_escalations",
            "Student answers that failed a check and went to the frontier.",
            ["route", "task"],
            registry=reg,
        )
        self.tokens = Counter("bitrate_tokens", "Tokens, by kind.", ["route", "target", "kind"], registry=reg)
        self.cost = Counter(
            "bitrate_cost_dollars",
            "Cost of the answers at the policy's prices.",
            ["route", "target"],
            registry=reg,
        )
        self.saved = Counter(
            "bitrate_cost_saved_dollars",
            "Estimated saving against sending every request to the route's frontier.",
            ["route", "target"],
            registry=reg,
        )

    def answered(
        self, decision: Decision, status: int, seconds: float, usage: Usage | None, stream: bool
    ) -> None:
        """Count one answer (complete, or a stream that ended, failed or was abandoned)."""
        route, target = decision.route, decision.target
        self._child(self.requests, route, target, decision.task, str(status)).inc()
        self._child(self.latency, route, target, "true" if stream else "false").observe(seconds)
        if decision.fallback_from:
            self._child(self.fallbacks, route, decision.fallback_from, target).inc()
        if decision.escalated:
            self._child(self.escalations, route, decision.task).inc()
        if usage is not None:
            self._count_usage(route, target, usage)

    def failed(self, route: str | None, status: int, seconds: float) -> None:
        """Count a request that got an error before any routing answer."""
        label = route if route in self._known else NONE
        self._child(self.requests, label, NONE, NONE, str(status)).inc()
        self._child(self.latency, label, NONE, "false").observe(seconds)

    def first_token(self, decision: Decision, seconds: float) -> None:
        """Record a stream's time to first token."""
        self._child(self.ttft, decision.route, decision.target).observe(seconds)

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per label set: ``labels()`` validates its
        arguments and takes a lock on every call, six times per proxied request."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)

    def _count_usage(self, route: str, target: str, usage: Usage) -> None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        self._child(self.tokens, route, target, "prompt").inc(prompt)
        self._child(self.tokens, route, target, "completion").inc(completion)
        price = self._prices.get(target)
        if price is None:
            return
        actual = price.cost(prompt, completion)
        self._child(self.cost, route, target).inc(actual)
        frontier = self._frontier_price.get(route)
        if frontier is not None:  # clamped: a counter never goes down
            self._child(self.saved, route, target).inc(max(0.0, frontier.cost(prompt, completion) - actual))
