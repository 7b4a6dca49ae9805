"""Prometheus metrics, one registry per app (two gateways in one process never mix).

Series (all prefixed ``bitrate_``):

- ``requests_total{route,target,task,status}``: answers, by where they went and how they ended
  (``status`` is the HTTP status; ``499`` for a stream the client abandoned);
- ``request_seconds{route,target,stream}``: latency until the last byte;
- ``time_to_first_token_seconds{route,target}``: for streams, until the first chunk was sent;
- ``fallbacks_total{route,from_target,to_target}``, ``escalations_total{route,task}``;
- ``capability_reroutes_total{route,need}``: requests sent to the other side because the first
  choice lacks ``need`` (``tools``, ``vision``, ``json_schema``, ``context``; rule ``capability``);
- ``tokens_total{route,target,kind}`` with ``kind`` = ``prompt`` | ``completion``;
- ``cost_dollars_total{route,target}``: what the answers cost at the policy's prices;
- ``cost_saved_dollars_total{route,target}``: (route's frontier price - actual price) x tokens,
  the estimated saving against sending everything to the frontier.

The live series (shadow traffic, live verdicts, novel traffic) are ``gateway.live_metrics``'s;
shadow calls are counted there and nowhere here.

Tokens and cost need ``usage``: streams count them only with ``stream_options.include_usage``.
Labels only take names from the policy or the profile, so a caller cannot add series: an
unknown model name is counted as route ``-``, and a hinted task its route does not know
(not a profile category, rule task or pin key of that route, named once at startup with
:meth:`GatewayMetrics.name_tasks`) as task ``other``. Tasks named by the other detectors
(rules, embeddings, lexical) come from the policy or the profile and keep their names.

The hot path only adds to plain dicts (a request costs a few dict updates and one
``bisect``); the Prometheus families are built from them when ``/metrics`` is scraped
(:class:`_Snapshot`, a custom collector). ``prometheus_client``'s own ``Counter.labels().inc()``
validates labels and takes a lock on every call: about 4% of a proxied request.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from sdk.backends.config import Price
from sdk.decision import Decision
from sdk.protocol import Usage

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
NONE = "-"
OTHER = "other"
"""The ``task`` label of a hinted task that its route does not know."""
_NO_TASKS: frozenset[str] = frozenset()
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class _Counter:
    """One counter family: label values -> running total."""

    name: str
    doc: str
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in list(self.values.items()):
            family.add_metric(key, value)
        return family


@dataclass
class _Histogram:
    """One histogram family: label values -> [count per bucket (the last is +Inf), sum]."""

    name: str
    doc: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = _LATENCY_BUCKETS
    values: dict[tuple[str, ...], list[float]] = field(default_factory=dict)

    def observe(self, key: tuple[str, ...], seconds: float) -> None:
        cells = self.values.get(key)
        if cells is None:
            cells = self.values[key] = [0.0] * (len(self.buckets) + 2)
        cells[bisect_left(self.buckets, seconds)] += 1  # le is inclusive, as in Prometheus
        cells[-1] += seconds

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labels)
        edges = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for key, cells in list(self.values.items()):
            running, cumulative = 0.0, []
            for edge, count in zip(edges, cells[:-1], strict=True):
                running += count
                cumulative.append((edge, running))
            family.add_metric(list(key), cumulative, sum_value=cells[-1])
        return family


class _Snapshot:
    """The collector registered with the registry: families built from the dicts at scrape time."""

    def __init__(self, families: list[_Counter | _Histogram]):
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.family()


class GatewayMetrics:
    """The gateway's series and the prices needed to turn tokens into dollars."""

    def __init__(
        self,
        prices: Mapping[str, Price],
        frontier_of: Mapping[str, str],
        tasks: Mapping[str, Iterable[str]] | None = None,
    ):
        """``prices``: model name -> price; ``frontier_of``: route name -> its frontier model;
        ``tasks``: route name -> the tasks it knows (see :meth:`name_tasks`)."""
        self._tasks: dict[str, frozenset[str]] = {}
        self.name_tasks(tasks or {})
        self._prices = dict(prices)
        self._frontier_price = {r: self._prices[f] for r, f in frontier_of.items() if f in self._prices}
        self._known = frozenset(self._prices) | frozenset(frontier_of)
        self.requests = _Counter(
            "bitrate_requests",
            "Answers by route, target, task and HTTP status.",
            ("route", "target", "task", "status"),
        )
        self.latency = _Histogram(
            "bitrate_request_seconds",
            "Seconds until the last byte of the answer.",
            ("route", "target", "stream"),
        )
        self.ttft = _Histogram(
            "bitrate_time_to_first_token_seconds",
            "Seconds until the first stream chunk was sent.",
            ("route", "target"),
        )
        self.fallbacks = _Counter(
            "bitrate_fallbacks",
            "Requests answered by the other side after a backend failure.",
            ("route", "from_target", "to_target"),
        )
        self.escalations = _Counter(
            "bitrate_escalations",
            "Student answers that failed a check and went to the frontier.",
            ("route", "task"),
        )
        self.capability = _Counter(
            "bitrate_capability_reroutes",
            "Requests sent to the other side because the first choice lacks what they need.",
            ("route", "need"),
        )
        self.tokens = _Counter("bitrate_tokens", "Tokens, by kind.", ("route", "target", "kind"))
        self.cost = _Counter(
            "bitrate_cost_dollars", "Cost of the answers at the policy's prices.", ("route", "target")
        )
        self.saved = _Counter(
            "bitrate_cost_saved_dollars",
            "Estimated saving against sending every request to the route's frontier.",
            ("route", "target"),
        )
        families: list[_Counter | _Histogram] = [
            self.requests, self.latency, self.ttft, self.fallbacks,
            self.escalations, self.capability, self.tokens, self.cost, self.saved,
        ]  # fmt: skip
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Snapshot(families))

    def name_tasks(self, tasks: Mapping[str, Iterable[str]]) -> None:
        """The tasks each route knows (its profile's categories, rule tasks and pin keys): a
        hinted task outside its route's set is labelled ``other``."""
        self._tasks = {route: frozenset(names) for route, names in tasks.items()}

    def task_label(self, decision: Decision) -> str:
        """The ``task`` label of ``decision``: its task, or ``other`` for a hint the route does not know."""
        task = decision.task
        if decision.task_source != "hint" or task in self._tasks.get(decision.route, _NO_TASKS):
            return task
        return OTHER

    def answered(
        self, decision: Decision, status: int, seconds: float, usage: Usage | None, stream: bool
    ) -> None:
        """Count one answer (complete, or a stream that ended, failed or was abandoned)."""
        route, target, task = decision.route, decision.target, self.task_label(decision)
        self.requests.add((route, target, task, str(status)))
        self.latency.observe((route, target, "true" if stream else "false"), seconds)
        if decision.fallback_from:
            self.fallbacks.add((route, decision.fallback_from, target))
        if decision.escalated:
            self.escalations.add((route, task))
        for need in decision.lacking:
            self.capability.add((route, need))
        if usage is not None:
            self._count_usage(route, target, usage)

    def failed(self, route: str | None, status: int, seconds: float) -> None:
        """Count a request that got an error before any routing answer."""
        label = route if route in self._known else NONE
        self.requests.add((label, NONE, NONE, str(status)))
        self.latency.observe((label, NONE, "false"), seconds)

    def first_token(self, decision: Decision, seconds: float) -> None:
        """Record a stream's time to first token."""
        self.ttft.observe((decision.route, decision.target), seconds)

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)

    def _count_usage(self, route: str, target: str, usage: Usage) -> None:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        self.tokens.add((route, target, "prompt"), prompt)
        self.tokens.add((route, target, "completion"), completion)
        price = self._prices.get(target)
        if price is None:
            return
        actual = price.cost(prompt, completion)
        self.cost.add((route, target), actual)
        frontier = self._frontier_price.get(route)
        if frontier is not None:  # clamped: a counter never goes down
            self.saved.add((route, target), max(0.0, frontier.cost(prompt, completion) - actual))
