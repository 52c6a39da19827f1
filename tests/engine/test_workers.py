"""Per-model workers (agent.engine.workers.ModelWorkers): a scan's batch of requests, and a running
reconcile taking over the requests that only ask for versions."""

from __future__ import annotations

import threading

from agent.domain.requests import Request
from agent.engine.scheduler import Scheduler
from agent.engine.workers import ModelWorkers
from tests.fakes import ManualClock


def test_a_batch_reconciles_each_model_once_and_answers_every_request():
    # GIVEN workers on a pool of 2 threads
    done: list[str] = []
    lock = threading.Lock()

    def work(model: str, request: Request) -> str:
        with lock:
            done.append(model)
        return f"{model} done"

    workers: ModelWorkers[str] = ModelWorkers(work, Scheduler(ManualClock()), max_workers=2)
    try:
        # WHEN a scan hands over 50 models at once, one of them twice
        names = [f"m{number}" for number in range(50)]
        futures = workers.request_many([(name, Request(from_scan=True)) for name in [*names, "m7"]])
        # THEN every request is answered by its model's reconcile, each model reconciled once (m7's two merged)
        assert [future.result(timeout=10) for future in futures] == [f"{name} done" for name in [*names, "m7"]]
        assert sorted(done) == sorted(names)
    finally:
        workers.stop()


def test_a_running_reconcile_absorbs_the_requests_for_versions_that_arrive_meanwhile():
    # GIVEN a reconcile of m that runs until told to look for more demands
    started, release = threading.Event(), threading.Event()
    absorbed: list[frozenset[int]] = []
    workers: ModelWorkers[str] = ModelWorkers(lambda model, request: "", Scheduler(ManualClock()), max_workers=2)

    def work(model: str, request: Request) -> str:
        started.set()
        release.wait(10)
        absorbed.append(workers.absorb(model))
        return f"loaded {sorted(request.demand | absorbed[-1])}"

    workers._work = work
    demands: list[str] = []
    workers.on_demand = demands.append
    try:
        first = workers.request("m", Request(demand=frozenset({1})))
        assert started.wait(10)
        # WHEN a request for version 2 arrives while it runs
        second = workers.request("m", Request(demand=frozenset({2})))
        # THEN the running reconcile is told, takes it over, and answers both
        assert demands == ["m"]
        release.set()
        assert first.result(timeout=10) == second.result(timeout=10) == "loaded [1, 2]"
        assert absorbed == [frozenset({2})]
    finally:
        workers.stop()
