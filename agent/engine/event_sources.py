"""Event sources the agent starts and stops: a given queue (queue mode) or its own queue on a topic (topic mode)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.domain.errors import ReloaderError
from agent.engine.consumer import QueueConsumer
from agent.engine.replica_queue import ReplicaQueue
from agent.engine.scheduler import Handle, Scheduler

RETRY_FIRST = 1.0  # seconds before the first retry to create the queue; doubled up to RETRY_MOST
RETRY_MOST = 30.0

log = logging.getLogger(__name__)


class QueueEvents:
    """Queue mode: consume a queue someone else created (one replica, or one queue per fixed replica)."""

    def __init__(self, consumer: QueueConsumer) -> None:
        self._consumer = consumer

    def start(self) -> None:
        self._consumer.start()

    def stop(self) -> None:
        self._consumer.stop()


class TopicEvents:
    """Topic mode: create this replica's queue on the topic, consume it, delete it on a clean stop."""

    def __init__(
        self,
        replica_queue: ReplicaQueue,
        consumer_for: Callable[[str, Callable[[], None]], QueueConsumer],
        scheduler: Scheduler,
    ) -> None:
        self._replica_queue = replica_queue
        self._consumer_for = consumer_for
        self._scheduler = scheduler
        self._consumer: QueueConsumer | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._retry: Handle | None = None

    def start(self) -> None:
        """Create the queue now, or, while SQS/SNS cannot be reached, keep trying in the background
        (the API serves meanwhile, and the full scan keeps models current)."""
        try:
            self._begin()
        except ReloaderError as error:
            log.error("cannot create this replica's queue yet: %s; retrying in the background", error)
            self._try_later(RETRY_FIRST)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._retry is not None:
                self._retry.cancel()
            if self._consumer is not None:
                self._consumer.stop()
            self._replica_queue.delete()

    def _begin(self) -> None:
        url = self._replica_queue.create()
        with self._lock:
            if self._stopped:  # stopped while creating it: it must not outlive us
                self._replica_queue.delete()
                return
            self._consumer = self._consumer_for(url, self._recreate)
            self._consumer.start()
            self._replica_queue.start_heartbeat()

    def _try_later(self, delay: float) -> None:
        with self._lock:
            if not self._stopped:
                self._retry = self._scheduler.call_later(delay, lambda: self._try_again(delay))

    def _try_again(self, delay: float) -> None:
        try:
            self._begin()
        except ReloaderError:
            self._try_later(min(delay * 2, RETRY_MOST))
        else:
            log.info("created this replica's queue after all")

    def _recreate(self) -> None:
        """The queue vanished (deleted by hand, or a janitor misjudged us): create and subscribe it again."""
        self._replica_queue.create()
