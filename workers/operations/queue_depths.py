"""Queue depths for ``dualwrite queues``: every queue of the topology, with its table map and direction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.queues import Queue, all_queues
from workers.operations.broker_queues import BrokerQueues, QueueCounts


@dataclass(frozen=True)
class QueueDepth:
    queue: Queue
    counts: QueueCounts
    #: Seconds since the oldest ready message was first enqueued (retries keep their first time).
    oldest_ready_age: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue.name,
            "consumer": self.queue.consumer.value,
            "table_map": self.queue.table_map,
            "direction": self.queue.direction,
            "ready": self.counts.ready,
            "delayed": self.counts.delayed,
            "in_flight": self.counts.in_flight,
            # Of in_flight, held by dead workers (Redis: a heartbeat older than the timeout), and who holds what
            "in_flight_dead": self.counts.in_flight_dead,
            "in_flight_holders": [holder.as_json() for holder in self.counts.holders],
            "dead": self.counts.dead,
            "consumers": self.counts.consumers,
            "oldest_ready_age_seconds": self.oldest_ready_age,
        }


def queue_depths(broker: BrokerQueues, now: datetime) -> list[QueueDepth]:
    """Every queue of the system, in topology order: commands first, then each map's two legs."""
    queues = all_queues()
    counts = broker.counts([queue.name for queue in queues])
    return [QueueDepth(queue, counts[queue.name], _age(counts[queue.name].oldest_ready_at, now)) for queue in queues]


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round(max((now - since).total_seconds(), 0.0), 1)
