"""Event sources the agent starts and stops: a given queue (queue mode) or its own queue on a topic (topic mode)."""

from __future__ import annotations

from collections.abc import Callable

from agent.engine.consumer import QueueConsumer
from agent.engine.replica_queue import ReplicaQueue


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

    def start(self) -> None:
        url = self._replica_queue.create()
        self._consumer = self._consumer_for(url, self._recreate)
        self._consumer.start()
        self._replica_queue.start_heartbeat()

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop()
        self._replica_queue.delete()

    def _recreate(self) -> None:
        """The queue vanished (deleted by hand, or a janitor misjudged us): create and subscribe it again."""
        self._replica_queue.create()
