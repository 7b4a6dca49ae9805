"""Reading Prometheus exposition text in tests."""

from __future__ import annotations


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus series in exposition ``text`` (0 when absent)."""
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        metric, _, raw = series.partition("{")
        found = dict(p.split("=", 1) for p in raw.rstrip("}").split(",") if p)
        if metric == name and {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return 0.0
