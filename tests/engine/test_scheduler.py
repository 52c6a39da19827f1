"""The one scheduler, on a manual clock: calls run in time order when due, repeat, cancel, and sleeps end on stop."""

from __future__ import annotations

import threading

from agent.engine.scheduler import Scheduler, Stopping
from tests.fakes import ManualClock, SerialExecutor
from tests.support import wait_until


def manual() -> tuple[ManualClock, Scheduler]:
    clock = ManualClock()
    return clock, Scheduler(clock, SerialExecutor())


def test_calls_run_when_due_in_time_order():
    clock, scheduler = manual()
    ran: list[str] = []
    scheduler.call_later(5, lambda: ran.append("five"))
    scheduler.call_later(1, lambda: ran.append("one"))
    scheduler.call_at(clock.now() + 3, lambda: ran.append("three"))
    assert scheduler.run_due() == 0
    clock.advance(3)
    assert scheduler.run_due() == 2 and ran == ["one", "three"]
    clock.advance(2)
    assert scheduler.run_due() == 1 and ran == ["one", "three", "five"]


def test_a_cancelled_call_never_runs():
    clock, scheduler = manual()
    ran: list[int] = []
    scheduler.call_later(1, lambda: ran.append(1)).cancel()
    clock.advance(2)
    assert scheduler.run_due() == 0 and ran == [] and scheduler.pending() == 0


def test_every_repeats_after_each_call_until_cancelled_and_survives_a_crash():
    clock, scheduler = manual()
    ran: list[float] = []

    def work() -> None:
        ran.append(clock.now())
        if len(ran) == 1:
            raise RuntimeError("crash")

    handle = scheduler.every(lambda: 10, work, first=0)
    scheduler.run_due()
    clock.advance(10)
    scheduler.run_due()
    clock.advance(10)
    scheduler.run_due()
    assert ran == [1_000_000.0, 1_000_010.0, 1_000_020.0]
    handle.cancel()
    clock.advance(10)
    assert scheduler.run_due() == 0


def test_the_scheduler_thread_runs_what_the_clock_makes_due():
    # GIVEN a running scheduler on a manual clock
    clock = ManualClock()
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        done = threading.Event()
        scheduler.call_later(60, done.set)
        assert not done.is_set()
        # WHEN the clock moves past the call THEN the scheduler's thread runs it, with no real minute passing
        clock.advance(60)
        assert done.wait(5)
    finally:
        scheduler.stop()


def test_a_sleep_ends_when_the_clock_passes_it_or_at_once_on_stop():
    clock = ManualClock()
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        stopping = Stopping()
        results: list[bool] = []
        sleeper = threading.Thread(target=lambda: results.append(scheduler.sleep(30, stopping)))
        sleeper.start()
        wait_until(lambda: scheduler.pending() == 1, timeout=5, what="the sleep scheduled")
        clock.advance(30)
        sleeper.join(5)
        assert results == [False]
        # a stop wakes a long sleep at once
        sleeper = threading.Thread(target=lambda: results.append(scheduler.sleep(3600, stopping)))
        sleeper.start()
        wait_until(lambda: scheduler.pending() == 1, timeout=5, what="the second sleep scheduled")
        stopping.set()
        sleeper.join(5)
        assert results == [False, True]
    finally:
        scheduler.stop()
