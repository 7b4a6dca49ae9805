"""The live series on ``/metrics``, read from the engine's live runtime (``sdk.live.runtime``)
when scraped; registered by the app's lifespan when the policy has ``live:``.

Per route and category (the live monitor; labels from the policy and the store):

- ``bitrate_live_observations{route,category}``: graded pairs in the monitor's watch;
- ``bitrate_live_loss{route,category}``: their mean loss (f - s);
- ``bitrate_live_loss_low{route,category}``, ``bitrate_live_loss_high{route,category}``: the
  anytime-valid interval (its level in ``bitrate_live_confidence``);
- ``bitrate_live_verdict{route,category,verdict}``: 1 for the live verdict, 0 for the others;
- ``bitrate_live_demoted_since_seconds{route,category}``: Unix time of the demotion (absent
  when not demoted);
- ``bitrate_live_demotions_total{route,category}``: demotions this replica saw (its own or
  another replica's);
- ``bitrate_live_graded_info{route,category,grader}``: 1, naming the grader of the figures.

Per route (this replica, since start):

- ``bitrate_shadow_calls_total{route,direction,outcome}``: shadow and spot-check calls
  (``outcome``: ``ok``, ``error``, ``ungradable``);
- ``bitrate_shadow_drops_total{route,reason}``: jobs dropped before a call (``queue_full``,
  ``spend_cap``, ``worker_down``);
- ``bitrate_shadow_spend_dollars_total{route,model}``: what shadow and judge calls cost;
- ``bitrate_shadow_queue{route}``: jobs waiting now;
- ``bitrate_novel_requests_total{route}`` of ``bitrate_routed_requests_total{route}``: requests
  whose task was not detected, and ``bitrate_novel_traffic_share{route}``, their share.

Shadow calls are in none of the gateway's request series (``gateway.metrics``): only here. With
the live work in a child process (``sdk.live.isolated``), the figures are those it last sent
(every 0.2 s).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sdk.live.runtime import LiveView

__all__ = ["LiveCollector"]

_VERDICTS = ("safe", "uncertain", "unsafe")


class LiveCollector:
    """A Prometheus collector over one live runtime (see the module docstring)."""

    def __init__(self, runtime: LiveView):
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield from self._monitors()
        yield from self._shadow()
        yield from self._traffic()

    def _monitors(self) -> Iterator[Metric]:
        runtime, labels = self._runtime, ["route", "category"]
        n = GaugeMetricFamily("bitrate_live_observations", "Graded live pairs in the watch.", labels=labels)
        loss = GaugeMetricFamily("bitrate_live_loss", "Mean live loss (f - s).", labels=labels)
        low = GaugeMetricFamily(
            "bitrate_live_loss_low", "Lower end of the live loss interval.", labels=labels
        )
        high = GaugeMetricFamily(
            "bitrate_live_loss_high", "Upper end of the live loss interval.", labels=labels
        )
        level = GaugeMetricFamily("bitrate_live_confidence", "Level of the live interval.", labels=labels)
        verdict = GaugeMetricFamily(
            "bitrate_live_verdict", "1 for the live verdict.", labels=[*labels, "verdict"]
        )
        since = GaugeMetricFamily(
            "bitrate_live_demoted_since_seconds", "Unix time of the live demotion.", labels=labels
        )
        grader = GaugeMetricFamily(
            "bitrate_live_graded_info", "The grader of the live figures.", labels=[*labels, "grader"]
        )
        for (route, category), s in runtime.snapshots().items():
            key = [route, category]
            n.add_metric(key, s.n)
            if s.loss is not None:
                loss.add_metric(key, s.loss)
            low.add_metric(key, s.loss_low)
            high.add_metric(key, s.loss_high)
            level.add_metric(key, s.confidence)
            for name in _VERDICTS:
                verdict.add_metric([*key, name], 1.0 if s.verdict == name else 0.0)
            if s.demoted_since is not None:
                since.add_metric(key, s.demoted_since)
            grader.add_metric([*key, runtime.grader(route, category) or "-"], 1.0)
        demotions = CounterMetricFamily(
            "bitrate_live_demotions", "Live demotions this replica saw.", labels=labels
        )
        for (route, category), count in runtime.demotions_seen.items():
            demotions.add_metric([route, category], count)
        yield from (n, loss, low, high, level, verdict, since, grader, demotions)

    def _shadow(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "bitrate_shadow_calls", "Shadow and spot-check calls.", labels=["route", "direction", "outcome"]
        )
        drops = CounterMetricFamily(
            "bitrate_shadow_drops", "Shadow jobs dropped before a call.", labels=["route", "reason"]
        )
        spend = CounterMetricFamily(
            "bitrate_shadow_spend_dollars", "What shadow and judge calls cost.", labels=["route", "model"]
        )
        queue = GaugeMetricFamily("bitrate_shadow_queue", "Shadow jobs waiting.", labels=["route"])
        for route, (counters, queued) in self._runtime.shadow_figures().items():
            for (direction, outcome), count in list(counters.calls.items()):
                calls.add_metric([route, direction, outcome], count)
            for reason, count in list(counters.drops.items()):
                drops.add_metric([route, reason], count)
            for model, dollars in list(counters.spend.items()):
                spend.add_metric([route, model], dollars)
            queue.add_metric([route], queued)
        yield from (calls, drops, spend, queue)

    def _traffic(self) -> Iterator[Metric]:
        labels = ["route"]
        routed = CounterMetricFamily(
            "bitrate_routed_requests", "Requests answered through a route.", labels=labels
        )
        novel = CounterMetricFamily(
            "bitrate_novel_requests", "Routed requests whose task was not detected.", labels=labels
        )
        share = GaugeMetricFamily(
            "bitrate_novel_traffic_share", "Share of routed requests not detected.", labels=labels
        )
        for route, traffic in self._runtime.traffic.items():
            routed.add_metric([route], traffic.requests)
            novel.add_metric([route], traffic.undetected)
            if traffic.novel_share is not None:
                share.add_metric([route], traffic.novel_share)
        yield from (routed, novel, share)
