"""QueueConsumer's acknowledgement rules, with the recording queue of tests/fakes.py and real per-model workers.

A message is deleted only once every reconcile it asked for has finished (loaded, or a permanent
error recorded); after a temporary failure it is left, made visible again soon; a message that
is not an S3 event is left for the redrive policy, or deleted after a few deliveries when the
queue has none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest

from agent.boundaries.sqs import Message
from agent.domain.locations import S3Location
from agent.domain.requests import Request
from agent.domain.routing import ModelSet, ModelSource
from agent.engine import consumer as consumer_module
from agent.engine.consumer import QueueConsumer
from agent.engine.reconciler import Outcome
from agent.engine.scheduler import Scheduler
from agent.engine.workers import ModelWorkers
from agent.metrics import Metrics
from tests.fakes import RecordingQueue
from tests.support import s3_event_body, s3_test_event_body, wait_until

BUCKET = "models-bucket"


def s3_event(key: str, bucket: str = BUCKET) -> str:
    return s3_event_body(key, bucket)


Work = Callable[[str, Request], Outcome]


@pytest.fixture
def consume() -> Iterator[Callable[..., tuple[RecordingQueue, Metrics]]]:
    running: list[tuple[QueueConsumer, ModelWorkers[Outcome], Scheduler]] = []

    def start(messages: list[Message], work: Work, redrive_policy: bool = True) -> tuple[RecordingQueue, Metrics]:
        queue = RecordingQueue(messages, redrive_policy)
        models = ModelSet(fixed=tuple(ModelSource(name, S3Location(BUCKET, name)) for name in ("m", "n")))
        scheduler = Scheduler()
        scheduler.start()
        workers: ModelWorkers[Outcome] = ModelWorkers(work, scheduler)
        metrics = Metrics()
        consumer = QueueConsumer(queue, models, workers, scheduler, metrics, visibility_timeout=30)  # type: ignore[arg-type]
        consumer.start()
        running.append((consumer, workers, scheduler))
        return queue, metrics

    yield start
    for consumer, workers, scheduler in running:
        consumer.stop()
        workers.stop()
        scheduler.stop()


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def message(id_: str, body: str, receive_count: int = 1) -> Message:
    return Message(id_, f"receipt-{id_}", body, receive_count)


def test_a_message_is_deleted_only_once_its_reconcile_has_finished(consume):
    # GIVEN a reconcile of model m that is still running, and a message for model n behind its message
    release = threading.Event()
    started = threading.Event()

    def work(model: str, request: Request) -> Outcome:
        if model == "m":
            started.set()
            release.wait(10)
        return Outcome(model, changed=True)

    queue, metrics = consume([message("a", s3_event("m/2/model.pkl")), message("b", s3_event("n/1/model.pkl"))], work)
    assert started.wait(5)
    # THEN the message whose reconcile finished is deleted, and the one whose reconcile runs is not
    wait_until(lambda: queue.deleted, timeout=5, what="the first delete")
    assert queue.deleted == ["b"]
    # WHEN the reconcile finishes THEN its message is deleted too
    release.set()
    wait_until(lambda: queue.deleted == ["b", "a"], timeout=5, what="the second delete")
    assert queue.retried == []
    assert count(metrics, "reloader_messages_total", result="deleted") == 2


def test_after_a_temporary_failure_the_message_is_left_and_made_visible_soon(consume):
    # GIVEN a reconcile that fails for a reason that may pass (S3 unreachable, a download error)
    queue, metrics = consume(
        [message("a", s3_event("m/2/model.pkl"))], lambda model, _: Outcome(model, error="timeout", temporary=True)
    )
    # THEN the message is left, to be seen again after RETRY_VISIBILITY, and never deleted
    wait_until(lambda: queue.retried == [("a", consumer_module.RETRY_VISIBILITY)], timeout=5, what="the retry")
    assert queue.deleted == []
    assert count(metrics, "reloader_messages_total", result="left") == 1


def test_after_a_permanent_error_the_message_is_deleted(consume):
    # GIVEN a reconcile that records a permanent error (load_model raised: retrying the message cannot help)
    queue, metrics = consume(
        [message("a", s3_event("m/2/model.pkl"))], lambda model, _: Outcome(model, error="load_model raised")
    )
    wait_until(lambda: queue.deleted == ["a"], timeout=5, what="the delete")
    assert queue.retried == []
    assert count(metrics, "reloader_messages_total", result="left") == 0


def test_events_are_counted_one_per_record(consume):
    body = json.dumps(
        {"Records": json.loads(s3_event("m/1/a"))["Records"] + json.loads(s3_event("other/1/a"))["Records"]}
    )
    queue, metrics = consume([message("a", body)], lambda model, _: Outcome(model))
    wait_until(lambda: queue.deleted == ["a"], timeout=5, what="the delete")
    # one event applied, one for a prefix of no model ignored: counted per event
    assert count(metrics, "reloader_events_total", outcome="received") == 2
    assert count(metrics, "reloader_events_total", outcome="applied") == 1
    assert count(metrics, "reloader_events_total", outcome="ignored") == 1


def test_events_for_other_buckets_and_test_events_are_deleted_and_counted_as_ignored(consume):
    calls: list[str] = []
    queue, metrics = consume(
        [message("a", s3_event("m/1/x", bucket="another")), message("b", s3_test_event_body(BUCKET))],
        lambda model, _: calls.append(model) or Outcome(model),
    )
    wait_until(lambda: sorted(queue.deleted) == ["a", "b"], timeout=5, what="the deletes")
    assert calls == []
    assert count(metrics, "reloader_events_total", outcome="ignored") == 2
    assert count(metrics, "reloader_events_total", outcome="received") == 2


def test_an_unparseable_message_is_left_for_the_redrive_policy_and_does_not_block_the_next(consume):
    queue, metrics = consume(
        [message("junk", "not json", receive_count=9), message("good", s3_event("m/1/model.pkl"))],
        lambda model, _: Outcome(model),
    )
    wait_until(lambda: queue.deleted == ["good"], timeout=5, what="the valid message")
    assert count(metrics, "reloader_events_total", outcome="failed") == 1
    assert count(metrics, "reloader_messages_total", result="left") == 1


@pytest.mark.parametrize(
    ("receives", "deleted"),
    [
        pytest.param(consumer_module.BAD_MESSAGE_RECEIVES - 1, [], id="left-before-the-limit"),
        pytest.param(consumer_module.BAD_MESSAGE_RECEIVES, ["junk"], id="deleted-at-the-limit"),
    ],
)
def test_without_a_redrive_policy_an_unparseable_message_is_deleted_after_a_few_deliveries(
    consume, caplog, receives, deleted
):
    queue, _ = consume(
        [message("junk", "not json", receive_count=receives), message("good", s3_event("m/1/model.pkl"))],
        lambda model, _: Outcome(model),
        redrive_policy=False,
    )
    wait_until(lambda: "good" in queue.deleted, timeout=5, what="the valid message")
    wait_until(lambda: sorted(queue.deleted) == sorted(["good", *deleted]), timeout=5, what="the deletes")
    if deleted:
        assert "junk" in caplog.text and "without a redrive policy" in caplog.text


def test_the_consumer_long_polls_for_20_seconds_with_its_visibility_timeout(consume):
    queue, _ = consume([], lambda model, _: Outcome(model))
    wait_until(lambda: queue.receives, timeout=5, what="a receive")
    assert queue.receives[0] == (20, 30)
