"""The event path: SQS messages -> S3 object events -> the models they touch -> reconciles -> acknowledgements.

An event is a hint, not the truth: it only names a model to look at now. A message is deleted
once every reconcile it asked for has finished (loaded, or a permanent error recorded); after a
temporary failure it is made visible again soon, and the queue's redrive policy moves a message
that keeps failing to its dead-letter queue. A message that is not an S3 event is left for the
redrive policy too (on a queue without one it is deleted at its BAD_MESSAGE_RECEIVES-th delivery),
and never holds up the messages behind it. Receiving never waits for a reload.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

from agent.boundaries.sqs import Message, Queue
from agent.domain.errors import PermanentError, ReloaderError
from agent.domain.events import BadMessage, parse_message
from agent.domain.requests import route
from agent.domain.routing import ModelSet
from agent.engine.reconciler import Outcome
from agent.engine.scheduler import Scheduler, Stopping
from agent.engine.state_log import StateLog
from agent.engine.workers import ModelWorkers
from agent.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_VISIBILITY = 10  # seconds before a message whose reload hit a temporary failure is seen again
BACKOFF_MAX = 10.0  # seconds, the longest wait between receive attempts while SQS is unreachable
ACK_WINDOW = 0.1  # seconds the acknowledger waits for more finished messages to delete in one call
BAD_MESSAGE_RECEIVES = 5  # without a redrive policy, an unparseable message is deleted at this delivery
HANDOFF_YIELD = 0.001  # seconds the receiver steps aside after handing messages to the model workers


class QueueConsumer:
    def __init__(
        self,
        source: Queue,
        models: ModelSet,
        workers: ModelWorkers[Outcome],
        scheduler: Scheduler,
        metrics: Metrics,
        visibility_timeout: int,
        wait_seconds: int = 20,
        on_queue_missing: Callable[[], None] | None = None,
    ) -> None:
        self._queue = source
        self._models = models
        self._workers = workers
        self._scheduler = scheduler
        self._metrics = metrics
        self._visibility = visibility_timeout
        self._wait = wait_seconds
        self._on_queue_missing = on_queue_missing
        self._redrive: bool | None = None
        self._stop = Stopping()
        self._done: queue.Queue[tuple[Message, bool]] = queue.Queue()
        self._receiver = threading.Thread(target=self._receive_loop, name="sqs-receive", daemon=True)
        self._acker = threading.Thread(target=self._ack_loop, name="sqs-ack", daemon=True)
        self._report = StateLog(
            log, "%s; serving continues, retrying with backoff", "receiving again", {"queue": source.url}
        )

    def start(self) -> None:
        self._receiver.start()
        self._acker.start()

    def stop(self) -> None:
        self._stop.set()
        # A long poll in flight is not waited for: what it receives stays in the queue and is redelivered.
        if self._receiver.is_alive():
            self._receiver.join(timeout=1)
        self._done.put_nowait((Message("", "", "", 0), False))  # wake the acker
        if self._acker.is_alive():
            self._acker.join(timeout=10)

    # -- receiving -----------------------------------------------------------------------
    def _receive_loop(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                messages = self._queue.receive(self._wait, self._visibility)
            except ReloaderError as error:
                self._report(f"cannot receive from {self._queue.url}: {error}")
                if isinstance(error, PermanentError) and self._on_queue_missing is not None:
                    self._recreate()
                self._scheduler.sleep(delay, self._stop)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            self._report(None)
            delay = 1.0
            received = self._scheduler.now()
            for message in messages:
                self._dispatch(message, received)
            if messages:
                # Step aside before preparing the next long poll (about 1 ms of botocore's CPU): the
                # reconciles just handed over then take the interpreter first and send their LISTs,
                # instead of waiting for this thread to block. Nothing waits on the next receive: what
                # arrives meanwhile stays in the queue. Measured: received -> reconcile 1.6-2.2 ms before,
                # 0.5 ms after (bench.reload, 2026-12-02). A yield, not a wait for a condition.
                time.sleep(HANDOFF_YIELD)

    def _recreate(self) -> None:
        assert self._on_queue_missing is not None
        try:
            self._on_queue_missing()
        except ReloaderError as error:
            log.debug("recreating the queue failed: %s", error)

    def _dispatch(self, message: Message, received: float) -> None:
        context = {"message_id": message.id, "queue": self._queue.url}
        try:
            events = parse_message(message.body)
        except BadMessage as error:
            self._metrics.events.labels("received").inc()
            self._metrics.events.labels("failed").inc()
            self._bad_message(message, error, context)
            return
        routed = route(events, self._models)
        log.debug("message %s: %d event(s), models %s", message.id, len(events), sorted(routed.models), extra=context)
        # Counted per event; a message with none (s3:TestEvent) counts as one event, ignored.
        ignored = routed.ignored if events else 1
        self._metrics.events.labels("received").inc(max(len(events), 1))
        if ignored:
            self._metrics.events.labels("ignored").inc(ignored)
        if len(events) > routed.ignored:
            self._metrics.events.labels("applied").inc(len(events) - routed.ignored)
        if not routed.models:
            self._done.put((message, True))
            return
        futures = [
            self._workers.request(model, replace(request, received=received))
            for model, request in routed.models.items()
        ]
        _when_all(futures, lambda ok: self._done.put((message, ok)))

    def _bad_message(self, message: Message, error: BadMessage, context: dict[str, str]) -> None:
        """Leave it for the redrive policy; without one, delete it once it has come back often enough."""
        if message.receive_count >= BAD_MESSAGE_RECEIVES and not self._has_redrive_policy():
            log.error(
                "message %s is not an S3 event and was received %d times from a queue without a redrive policy: "
                "deleted: %s",
                message.id,
                message.receive_count,
                error,
                extra=context,
            )
            self._done.put((message, True))
            return
        self._metrics.messages.labels("left").inc()
        log.error("message %s is not an S3 event, left for the dead-letter queue: %s", message.id, error, extra=context)

    def _has_redrive_policy(self) -> bool:
        """Whether the queue sets failing messages aside (asked once; assumed so while SQS cannot say)."""
        if self._redrive is None:
            try:
                self._redrive = "RedrivePolicy" in self._queue.attributes("RedrivePolicy")
            except ReloaderError as error:
                log.debug("cannot read the redrive policy of %s: %s", self._queue.url, error)
                return True
        return self._redrive

    # -- acknowledging -------------------------------------------------------------------
    def _ack_loop(self) -> None:
        while not self._stop.is_set() or not self._done.empty():
            first = self._done.get()  # stop() puts an empty message to wake it
            batch = [first]
            # Wait a moment for more: an upload's events come in a burst (its files, then its marker), and
            # one delete for all of them, after the marker's reload, keeps that call out of the reload's way.
            until = time.monotonic() + ACK_WINDOW
            while len(batch) < 10:
                try:
                    wait = 0.0 if self._stop.is_set() else max(0.0, until - time.monotonic())
                    batch.append(self._done.get(timeout=wait) if wait else self._done.get_nowait())
                except queue.Empty:
                    break
            self._acknowledge([m for m, ok in batch if ok and m.receipt])
            for message in (m for m, ok in batch if not ok and m.receipt):
                self._leave(message)

    def _acknowledge(self, messages: list[Message]) -> None:
        if not messages:
            return
        try:
            refused = self._queue.delete(messages)
        except ReloaderError as error:
            log.warning("deleting %d message(s) failed (they will be delivered again): %s", len(messages), error)
            self._metrics.messages.labels("left").inc(len(messages))
            return
        self._metrics.messages.labels("deleted").inc(len(messages) - len(refused))
        self._metrics.messages.labels("left").inc(len(refused))

    def _leave(self, message: Message) -> None:
        self._metrics.messages.labels("left").inc()
        try:
            self._queue.retry_in(message, RETRY_VISIBILITY)
        except ReloaderError as error:
            log.debug("could not shorten the visibility of %s: %s", message.id, error)


def _when_all(futures: list[Future[Outcome]], then: Callable[[bool], None]) -> None:
    """Call `then(ok)` once every future is done; ok when none failed temporarily (or was cancelled)."""
    remaining = [len(futures)]
    lock = threading.Lock()
    results: list[bool] = []

    def one_done(future: Future[Outcome]) -> None:
        ok = not future.cancelled() and future.exception() is None and not future.result().temporary
        with lock:
            results.append(ok)
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            then(all(results))

    for future in futures:
        future.add_done_callback(one_done)
