"""Topic mode's own queue, on a manual clock: the heartbeat tag is refreshed every interval, with no real waiting."""

from __future__ import annotations

from agent.domain import fleet
from agent.engine.replica_queue import ReplicaQueue
from agent.engine.scheduler import Scheduler
from tests.fakes import ManualClock, RecordingAdmin, RecordingTopic, SerialExecutor


def test_the_heartbeat_is_refreshed_every_interval_on_the_clock_and_stops_with_the_queue():
    # GIVEN a replica's queue on a manual clock, heartbeat every 300 s
    clock = ManualClock()
    scheduler = Scheduler(clock, SerialExecutor())
    admin = RecordingAdmin()
    queue = ReplicaQueue(admin, RecordingTopic(), "reloader", "api", "r1", 30, 300.0, scheduler)  # type: ignore[arg-type]
    queue.create()
    queue.start_heartbeat()
    created = len(admin.tags)

    def beats() -> list[str]:
        return [tags[fleet.HEARTBEAT_TAG] for _, tags in admin.tags[created:] if fleet.HEARTBEAT_TAG in tags]

    # WHEN 299 s pass THEN no refresh; at 300 s both queues get the clock's time
    clock.advance(299)
    scheduler.run_due()
    assert beats() == []
    clock.advance(1)
    scheduler.run_due()
    assert beats() == [str(int(clock.now()))] * 2
    # WHEN the queue is deleted THEN the heartbeat stops
    queue.delete()
    clock.advance(600)
    scheduler.run_due()
    assert len(beats()) == 2 and len(admin.deleted) == 2
