"""The periodic scan: its spread (every delay within interval +/- jitter), and a `dir` scan streaming its pages."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from agent.domain.locations import parse_location
from agent.domain.requests import Request
from agent.domain.routing import ModelSet
from agent.domain.versions import ObjectInfo
from agent.engine.index import Index
from agent.engine.reconciler import Outcome
from agent.engine.registry import Registry
from agent.engine.scanner import PeriodicScan, Scanner
from agent.engine.scheduler import Scheduler
from agent.metrics import Metrics


@pytest.mark.parametrize(("interval", "jitter"), [(300.0, 0.1), (10.0, 0.5), (60.0, 0.0)])
def test_scan_delays_stay_within_the_interval_plus_or_minus_jitter(interval: float, jitter: float) -> None:
    periodic = PeriodicScan(None, Scheduler(), interval, jitter, on_first_scan=lambda: None)  # type: ignore[arg-type]
    delays = [periodic._interval() for _ in range(2000)]  # the delay before each next scan
    assert all(interval * (1 - jitter) <= d <= interval * (1 + jitter) for d in delays)
    if jitter:
        assert max(delays) - min(delays) > interval * jitter  # spread, so replicas do not scan together
    else:
        assert set(delays) == {interval}


class PagedObjects:
    """A `dir` listing in pages, recording what the workers had been asked for when each page was listed."""

    def __init__(self, pages: list[list[str]], workers: RecordingWorkers) -> None:
        self._pages = pages
        self._workers = workers
        self.asked_before_page: list[list[str]] = []

    def pages(self, location: object) -> Iterator[list[ObjectInfo]]:
        for keys in self._pages:
            self.asked_before_page.append(list(self._workers.asked))
            yield [ObjectInfo(key, 1, "e") for key in keys]


class RecordingWorkers:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.objects: dict[str, list[str]] = {}

    def request(self, model: str, request: Request) -> Future[Outcome]:
        self.asked.append(model)
        self.objects[model] = [obj.key for obj in request.objects or ()]
        future: Future[Outcome] = Future()
        future.set_result(Outcome(model))
        return future

    def request_many(self, requests: list[tuple[str, Request]]) -> list[Future[Outcome]]:
        return [self.request(model, request) for model, request in requests]


def test_a_dir_scan_reconciles_each_model_once_its_keys_are_all_listed():
    # GIVEN a `dir` whose listing comes in two pages, model b spanning both
    workers = RecordingWorkers()
    objects = PagedObjects([["a/1/m", "b/1/m"], ["b/2/m", "c/1/m"]], workers)
    models = ModelSet(directory=parse_location("s3://bucket/zoo"))
    scanner = Scanner(models, objects, workers, Index(Registry(), 0.0), Metrics())  # type: ignore[arg-type]
    # WHEN it scans
    scanner.scan()
    # THEN a is reconciled before the second page is listed, b only once whole, with every key of each
    assert objects.asked_before_page == [[], ["a"]]
    assert sorted(workers.asked) == ["a", "b", "c"]
    assert workers.objects == {"a": ["1/m"], "b": ["1/m", "2/m"], "c": ["1/m"]}
