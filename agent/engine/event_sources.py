"""Event sources the agent starts and stops: a given queue (queue mode) or its own queue on a topic (topic mode)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from agent.domain.errors import ReloaderError
from agent.engine.consumer import QueueConsumer
from agent.engine.replica_queue import ReplicaQueue

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

    def __init__(self, replica_queue: ReplicaQueue, consumer_for: Callable[[str, Callable[[], None]], QueueConsumer]):
        self._replica_queue = replica_queue
        self._consumer_for = consumer_for
        self._consumer: QueueConsumer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._retry = threading.Thread(target=self._keep_trying, name="queue-create", daemon=True)

    def start(self) -> None:
        """Create the queue now, or, while SQS/SNS cannot be reached, keep trying in the background
        (the API serves meanwhile, and the full scan keeps models current)."""
        try:
            self._begin()
        except ReloaderError as error:
            log.error("cannot create this replica's queue yet: %s; retrying in the background", error)
            self._retry.start()

    def stop(self) -> None:
        self._stop.set()
        if self._retry.is_alive():
            self._retry.join(timeout=5)
        with self._lock:
            if self._consumer is not None:
                self._consumer.stop()
            self._replica_queue.delete()

    def _begin(self) -> None:
        url = self._replica_queue.create()
        with self._lock:
            if self._stop.is_set():
                return
            self._consumer = self._consumer_for(url, self._recreate)
            self._consumer.start()
            self._replica_queue.start_heartbeat()

    def _keep_trying(self) -> None:
        delay = 1.0
        while not self._stop.wait(delay):
            try:
                self._begin()
                log.info("created this replica's queue after all")
                return
            except ReloaderError:
                delay = min(delay * 2, 30.0)

    def _recreate(self) -> None:
        """The queue vanished (deleted by hand, or a janitor misjudged us): create and subscribe it again."""
        self._replica_queue.create()
