"""QueueConsumer's acknowledgement rules, with a small recording queue and real per-model workers.

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
from tests.support import s3_event_body, wait_until

BUCKET = "models-bucket"


def s3_event(key: str, bucket: str = BUCKET) -> str:
    return s3_event_body(key, bucket)


class RecordingQueue:
    """Serves the messages given to it once, then waits like an empty long poll; records the rest."""

    def __init__(self, messages: list[Message], redrive_policy: bool = True) -> None:
        self.url = "https://sqs.test/queue"
        self._inbox = list(messages)
        self._redrive_policy = redrive_policy
        self.deleted: list[str] = []
        self.retried: list[tuple[str, int]] = []
        self.changed = threading.Event()
        self.receives: list[tuple[int, int | None]] = []

    def receive(self, wait_seconds: int = 20, visibility_timeout: int | None = None) -> list[Message]:
        self.receives.append((wait_seconds, visibility_timeout))
        if self._inbox:
            batch, self._inbox = self._inbox[:10], self._inbox[10:]
            return batch
        self.changed.wait(0.05)
        return []

    def delete(self, messages: list[Message]) -> list[str]:
        self.deleted += [m.id for m in messages]
        return []

    def retry_in(self, message: Message, seconds: int) -> None:
        self.retried.append((message.id, seconds))

    def attributes(self, *names: str) -> dict[str, str]:
        return {"RedrivePolicy": "{}"} if self._redrive_policy else {}


Work = Callable[[str, Request], Outcome]


@pytest.fixture
def consume() -> Iterator[Callable[..., tuple[RecordingQueue, Metrics]]]:
    running: list[tuple[QueueConsumer, ModelWorkers[Outcome], Scheduler]] = []

    def start(messages: list[Message], work: Work, redrive_policy: bool = True) -> tuple[RecordingQueue, Metrics]:
        queue = RecordingQueue(messages, redrive_policy)
        models = ModelSet(
            fixed=(ModelSource("m", S3Location(BUCKET, "m")), ModelSource("other", S3Location(BUCKET, "other")))
        )
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
    # GIVEN a reconcile of model m that is still running, and a message for another model behind it
    release = threading.Event()
    started = threading.Event()

    def slow_for_m(model: str, request: Request) -> Outcome:
        if model == "m":
            started.set()
            release.wait(10)
        return Outcome(model, changed=True)

    queue, metrics = consume([message("a", s3_event("m/2/model.pkl")), message("b", s3_event("other/1/x"))], slow_for_m)
    assert started.wait(5)
    # THEN the other model's message is deleted once its reconcile is done, and m's is not while m's runs
    wait_until(lambda: queue.deleted == ["b"], timeout=5, what="the other model's message deleted")
    assert "a" not in queue.deleted
    # WHEN it finishes THEN the message is deleted
    release.set()
    wait_until(lambda: sorted(queue.deleted) == ["a", "b"], timeout=5, what="the delete")
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
        {"Records": json.loads(s3_event("m/1/a"))["Records"] + json.loads(s3_event("elsewhere/1/a"))["Records"]}
    )
    queue, metrics = consume([message("a", body)], lambda model, _: Outcome(model))
    wait_until(lambda: queue.deleted == ["a"], timeout=5, what="the delete")
    # one event applied, one for a prefix of no model ignored: counted per event
    assert count(metrics, "reloader_events_total", outcome="received") == 2
    assert count(metrics, "reloader_events_total", outcome="applied") == 1
    assert count(metrics, "reloader_events_total", outcome="ignored") == 1


def test_events_for_other_buckets_and_test_events_are_deleted_and_counted_as_ignored(consume):
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    calls: list[str] = []
    queue, metrics = consume(
        [message("a", s3_event("m/1/x", bucket="another")), message("b", test_event)],
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
