"""Requests to `/` by status code, with their time: a Prometheus histogram cheap enough for every request.

prometheus-client's own Histogram takes a lock per update and walks its buckets in Python: about
19,000 instructions per observation here, some 6 % of a trivial request. Requests are answered on
one thread, the event loop's, which also answers `/metrics`; so plain numbers, updated without a
lock (one bisect, two additions), are enough, and a custom collector (prometheus-client's own
extension point) turns them into the same histogram when scraped. A leaf module.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _Times:
    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # per bucket (not cumulative), the last one above every bound
        self.total = 0.0


class RequestTimes(Collector):
    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = tuple(float(bound) for bound in buckets)
        self._by_status: dict[int, _Times] = {}

    def observe(self, status_code: int, seconds: float) -> None:
        """One request answered; on the thread that also collects (the event loop's)."""
        times = self._by_status.get(status_code)
        if times is None:
            times = self._by_status[status_code] = _Times(len(self._bounds))
        times.counts[bisect_left(self._bounds, seconds)] += 1  # the first bound >= seconds: Prometheus's `le`
        times.total += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=["status_code"])
        for status_code, times in sorted(self._by_status.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self._bounds, float("inf")), times.counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
            family.add_metric([str(status_code)], buckets, times.total)
        yield family
