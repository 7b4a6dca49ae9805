"""The gateway's metrics: plain counters on the hot path, valid Prometheus text at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from sdk.backends.config import Price
from sdk.decision import Decision
from sdk.protocol import Usage
from tests.gateway.promtext import sample

STUDENT = Decision("auto", "student", "student", task="copy")


def metrics() -> GatewayMetrics:
    prices = {"student": Price(input=1.0, output=2.0), "frontier": Price(input=10.0, output=20.0)}
    return GatewayMetrics(prices, {"auto": "frontier"})


def test_counts_tokens_cost_and_saving_per_route_and_target():
    m = metrics()
    for _ in range(3):
        m.answered(STUDENT, 200, 0.02, Usage(prompt_tokens=100, completion_tokens=50), stream=False)
    text = m.render().decode()
    assert (
        sample(text, "bitrate_requests_total", route="auto", target="student", task="copy", status="200") == 3
    )
    assert sample(text, "bitrate_tokens_total", route="auto", target="student", kind="prompt") == 300
    cost = 3 * (100 * 1.0 + 50 * 2.0) / 1e6
    frontier = 3 * (100 * 10.0 + 50 * 20.0) / 1e6
    assert abs(sample(text, "bitrate_cost_dollars_total", route="auto", target="student") - cost) < 1e-12
    saved = sample(text, "bitrate_cost_saved_dollars_total", route="auto", target="student")
    assert abs(saved - (frontier - cost)) < 1e-12


def test_histogram_buckets_are_cumulative_and_inclusive():
    m = metrics()
    for seconds in (0.005, 0.007, 0.3, 500.0):
        m.answered(STUDENT, 200, seconds, None, stream=True)
    text = m.render().decode()
    labels = {"route": "auto", "target": "student", "stream": "true"}
    bucket = "bitrate_request_seconds_bucket"
    assert sample(text, bucket, le="0.005", **labels) == 1  # le is inclusive
    assert sample(text, bucket, le="0.01", **labels) == 2
    assert sample(text, bucket, le="0.5", **labels) == 3
    assert sample(text, bucket, le="120.0", **labels) == 3
    assert sample(text, bucket, le="+Inf", **labels) == 4
    assert sample(text, "bitrate_request_seconds_count", **labels) == 4
    assert abs(sample(text, "bitrate_request_seconds_sum", **labels) - 500.312) < 1e-9


def test_exposition_parses_with_prometheus_own_parser():
    m = metrics()
    m.answered(STUDENT.with_(fallback_from="frontier"), 200, 0.1, None, stream=False)
    m.answered(STUDENT.with_(escalated=True), 200, 0.1, None, stream=False)
    m.first_token(STUDENT, 0.004)
    m.failed("not-a-route", 400, 0.001)
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert {f.type for f in families.values()} == {"counter", "histogram"}
    failed = [s for s in families["bitrate_requests"].samples if s.labels["status"] == "400"]
    assert [s.labels["route"] for s in failed] == ["-"]  # unknown names never become labels
    assert families["bitrate_fallbacks"].samples[0].labels["from_target"] == "frontier"
    assert families["bitrate_escalations"].samples[0].value == 1
    assert families["bitrate_time_to_first_token_seconds"].samples
