"""Prometheus metrics of one agent, in a registry of its own (several agents can share a process in tests).

A leaf module: every layer may record into it; it imports nothing of ours but its request collector.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from agent.request_times import RequestTimes

RELOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reload_latency = Histogram(
            "reloader_reload_latency_seconds",
            "From the time of the S3 event that announced a version to the version serving (event-driven loads only).",
            ["model"],
            buckets=RELOAD_BUCKETS,
            registry=r,
        )
        self.load_duration = Histogram(
            "reloader_load_duration_seconds",
            "Download plus load of one version.",
            ["model"],
            buckets=RELOAD_BUCKETS,
            registry=r,
        )
        self.events = Counter(
            "reloader_events_total",
            "S3 events, one per record: received, and of those applied (routed to a model), ignored (other bucket "
            "or prefix, s3:TestEvent) or failed (an unparseable message, counted as one at each delivery).",
            ["outcome"],
            registry=r,
        )
        self.messages = Counter(
            "reloader_messages_total",
            "SQS messages, by what became of them (deleted, left).",
            ["result"],
            registry=r,
        )
        self.drift = Counter(
            "reloader_scan_drift_total", "Changes a full scan found that no event announced.", ["model"], registry=r
        )
        self.scans = Counter("reloader_scans_total", "Full scans run.", registry=r)
        self.s3_requests = Counter(
            "reloader_s3_requests_total", "S3 API calls, by operation.", ["operation"], registry=r
        )
        self.s3_request_seconds = Histogram(
            "reloader_s3_request_seconds",
            "Duration of S3 API calls, by operation.",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.sqs_requests = Counter(
            "reloader_sqs_requests_total", "SQS API calls, by operation.", ["operation"], registry=r
        )
        self.versions_loaded = Gauge("reloader_versions_loaded", "Versions serving, per model.", ["model"], registry=r)
        self.load_failures = Counter(
            "reloader_load_failures_total", "Versions that failed to download or load.", ["model"], registry=r
        )
        self.tfserving_resends = Counter(
            "reloader_tfserving_resends_total",
            "Times TF Serving had lost loaded versions (a restart) or missed a change, and got the config again.",
            registry=r,
        )

        self.http_requests = RequestTimes(
            "reloader_http_request_duration_seconds",
            "Requests answered by the API's handler endpoint `/`, by status code (`_count`: how many), and the time "
            "from each reaching `/` to its answer sent (body read, handler, serialisation).",
            REQUEST_BUCKETS,
        )
        r.register(self.http_requests)

    def http_request(self, status_code: int, seconds: float) -> None:
        """One request to `/` answered; on the event loop's thread only (see agent/request_times.py)."""
        self.http_requests.observe(status_code, seconds)

    def s3_call(self, operation: str, seconds: float) -> None:
        self.s3_requests.labels(operation).inc()
        self.s3_request_seconds.labels(operation).observe(seconds)

    def sqs_call(self, operation: str, seconds: float) -> None:
        self.sqs_requests.labels(operation).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
