"""The request histogram's collector: the same exposition as prometheus-client's own Histogram would give."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from agent.request_times import RequestTimes

BUCKETS = (0.001, 0.01, 0.1, 1.0)
OBSERVED = [(200, 0.0005), (200, 0.001), (200, 0.05), (500, 0.2), (200, 3.0), (404, 0.01)]


def test_the_exposition_equals_prometheus_clients_histogram():
    # GIVEN the same observations, one bound hit exactly (0.001, 0.01: `le` includes it), one above every bound
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    times = RequestTimes("requests_seconds", "Requests.", BUCKETS)
    ours.register(times)
    reference = Histogram("requests_seconds", "Requests.", ["status_code"], buckets=BUCKETS, registry=theirs)
    for status_code, seconds in OBSERVED:
        times.observe(status_code, seconds)
        reference.labels(str(status_code)).observe(seconds)
    # THEN the two expositions carry the same samples (prometheus-client adds `_created`)
    expected = [line for line in generate_latest(theirs).decode().splitlines() if "_created" not in line]
    assert sorted(generate_latest(ours).decode().splitlines()) == sorted(expected)
