"""Reading the proxy's Prometheus counters in the test process."""

from __future__ import annotations

from prometheus_client import Counter


def counter(metric: Counter, **labels: str) -> float:
    """The counter's value now (with ``labels`` for a labelled one)."""
    child = metric.labels(**labels) if labels else metric
    value: float = child._value.get()
    return value
