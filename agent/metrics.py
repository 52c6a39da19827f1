"""Prometheus metrics of one agent, in a registry of its own (several agents can share a process in tests).

A leaf module: every layer may record into it; it imports nothing of ours but its request collector.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from agent.request_times import RequestTimes

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 10)

RELOAD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


HTTP_REQUESTS = "reloader_http_request_duration_seconds"
HTTP_REQUESTS_HELP = (
    "Requests answered by the API's handler endpoint `/`, by status code (`_count`: how many), and the time "
    "from each reaching `/` to its answer sent (body read, handler, serialisation)."
)


class Metrics:
    def __init__(self, requests: bool = True) -> None:
        """`requests` False: the requests are answered, and counted, by serving processes (ProcessRequests)."""
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
        self.reload_stages = Histogram(
            "reloader_reload_stage_seconds",
            "Event-driven loads, per stage: delivery (S3's event time -> message received), dispatch (-> the model's "
            "reconcile starts), list, download, load (load_model or TF Serving), swap (-> serving).",
            ["stage"],
            buckets=STAGE_BUCKETS,
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
        self.early_downloads = Counter(
            "reloader_early_downloads_total",
            "Objects downloaded as their event arrived, before their version's marker: by outcome (downloaded; "
            "then used by the version's load, or unused: changed, removed or not complete in time; or failed).",
            ["outcome"],
            registry=r,
        )
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

        # Multi-model caching: no model label (10,000 models would be 10,000 series).
        self.cache_hits = FastCounter()  # on every cached request's path: no lock
        self.cache_misses = FastCounter()
        r.register(
            _Counted(
                "reloader_cache_requests",
                "get_model / predict lookups with caching on: hit (in memory) or miss (a cold load).",
                "result",
                {"hit": self.cache_hits, "miss": self.cache_misses},
            )
        )
        self.cache_evictions = Counter(
            "reloader_cache_evictions_total",
            "Entries evicted by the LRU: from memory (cache_size), folders from disk (disk_cache_size), or retiring "
            "folders removed before retire_after (at most disk_cache_size retire at once).",
            ["where"],
            registry=r,
        )
        self.cold_load_seconds = Histogram(
            "reloader_cold_load_seconds",
            "A cold load asked for by a request, by phase: download (0 when the folder was on disk) and load.",
            ["phase"],
            buckets=RELOAD_BUCKETS,
            registry=r,
        )
        self.cache_loads_in_flight = Gauge(
            "reloader_cache_loads_in_flight", "Entries being loaded (cold loads and eager refreshes).", registry=r
        )
        self.cache_entries = Gauge(
            "reloader_cache_entries",
            "Entries in memory, version folders on disk, and folders retiring (removed after retire_after).",
            ["where"],
            registry=r,
        )

        self.http_requests = RequestTimes(HTTP_REQUESTS, HTTP_REQUESTS_HELP, REQUEST_BUCKETS)
        if requests:
            r.register(self.http_requests)

    def include_processes(self, directory: str) -> None:
        """Add what the serving processes record (prometheus-client's multiprocess files in `directory`)."""
        from prometheus_client.multiprocess import MultiProcessCollector

        MultiProcessCollector(self.registry, directory)  # type: ignore[no-untyped-call]

    def http_request(self, status_code: int, seconds: float) -> None:
        """One request to `/` answered; on the event loop's thread only (see agent/request_times.py)."""
        self.http_requests.observe(status_code, seconds)

    def track_replica_state(self, read: Callable[[], tuple[Mapping[str, Any], bool]]) -> None:
        """Expose the gauges computed at each scrape from `read()`: (the `/models` snapshot, ready or not)."""
        self.registry.register(ReplicaStateCollector(read))

    def s3_call(self, operation: str, seconds: float) -> None:
        self.s3_requests.labels(operation).inc()
        self.s3_request_seconds.labels(operation).observe(seconds)

    def sqs_call(self, operation: str, seconds: float) -> None:
        self.sqs_requests.labels(operation).inc()

    def stages(self, start: float, marks: Sequence[tuple[str, float]]) -> None:
        """Observe each stage of one load: from `start` (the event's time) to its mark, then mark to mark."""
        previous = start
        for stage, at in marks:
            self.reload_stages.labels(stage).observe(max(0.0, at - previous))
            previous = at

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ProcessRequests:
    """The request histogram of a serving process (`processes_per_replica`), in prometheus-client's
    multiprocess mode: its values live in files under PROMETHEUS_MULTIPROC_DIR, which the agent set
    before this process imported prometheus-client, and the agent sums every process's into one
    `reloader_http_request_duration_seconds` (counters and histograms add up across processes)."""

    def __init__(self) -> None:
        self._histogram = Histogram(
            HTTP_REQUESTS, HTTP_REQUESTS_HELP, ["status_code"], buckets=REQUEST_BUCKETS, registry=CollectorRegistry()
        )
        self._by_status: dict[int, Any] = {}

    def http_request(self, status_code: int, seconds: float) -> None:
        child = self._by_status.get(status_code)
        if child is None:
            child = self._by_status[status_code] = self._histogram.labels(str(status_code))
        child.observe(seconds)


class FastCounter:
    """A counter for a hot path: `inc()` is one `next()` of an itertools.count, atomic in CPython and
    without the lock prometheus-client's Counter takes (which cost more than a cache hit itself)."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._reads = 0  # each read (and stamp) consumes one step of the counter
        self._added = 0  # counted elsewhere and told in a sum (a serving process's hits)
        self._lock = threading.Lock()
        # Returns the step it took: the cache's hit counter is also its LRU clock (agent.engine.hit_views).
        self.inc: Callable[[], int] = self._counter.__next__

    def stamp(self) -> int:
        """The clock's next step, not counted: a time on the same clock as the `inc()`s."""
        with self._lock:
            self._reads += 1
            return next(self._counter)

    def add(self, count: int) -> None:
        with self._lock:
            self._added += count

    @property
    def value(self) -> int:
        with self._lock:
            value = next(self._counter) - self._reads + self._added
            self._reads += 1
            return value


class _Counted:
    """A Prometheus collector of FastCounters, one label value each."""

    def __init__(self, name: str, documentation: str, label: str, counters: dict[str, FastCounter]) -> None:
        self._name = name
        self._documentation = documentation
        self._label = label
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, counter in self._counters.items():
            family.add_metric([value], counter.value)
        yield family


VERSION_STATES = ("loading", "ready", "failed", "waiting")


def versions_by_state(snapshot: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """(model, state) -> how many of the model's versions are in that state, every state of every model
    listed (zeros included, so a rule sees 0 rather than no series). `snapshot` is the `/models` view."""
    counts = {}
    for model, status in snapshot.items():
        states = [version["state"] for version in status.get("versions", {}).values()]
        if states and not any(state in VERSION_STATES for state in states):
            continue  # with caching: only in S3 or on disk ("available"); 10,000 such models, no series
        for state in VERSION_STATES:
            counts[(model, state)] = states.count(state)
    return counts


class ReplicaStateCollector(Collector):
    """`reloader_versions{model,state}` and `reloader_ready`, derived at scrape time from the one owner
    of that state (the registry, and readiness), so they can never disagree with `/models` and `/readyz`."""

    def __init__(self, read: Callable[[], tuple[Mapping[str, Any], bool]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        snapshot, ready = self._read()
        versions = GaugeMetricFamily(
            "reloader_versions",
            "Versions per model and state (loading, ready, failed, waiting), as /models shows them.",
            labels=["model", "state"],
        )
        for (model, state), count in sorted(versions_by_state(snapshot).items()):
            versions.add_metric([model, state], count)
        yield versions
        yield GaugeMetricFamily(
            "reloader_ready", "1 when /readyz answers 200 (initial load done, not shutting down), else 0.", int(ready)
        )


class ServingProcessesCollector(Collector):
    """`reloader_serving_process_up{process}` and `reloader_serving_process_versions{process}`, read at each
    scrape from the agent's record of its serving processes: (number, serving, versions loaded) each."""

    def __init__(self, read: Callable[[], Sequence[tuple[int, bool, int]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "reloader_serving_process_up",
            "1 while the serving process serves, 0 while it starts or is down (processes_per_replica).",
            labels=["process"],
        )
        versions = GaugeMetricFamily(
            "reloader_serving_process_versions", "Versions loaded in each serving process.", labels=["process"]
        )
        for number, serving, loaded in self._read():
            up.add_metric([str(number)], int(serving))
            versions.add_metric([str(number)], loaded)
        yield up
        yield versions
