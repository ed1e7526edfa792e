"""The operator tools on Redis: dramatiq's keys read and edited with redis-py.

dramatiq (``brokers/redis/dispatch.lua``) keeps, per queue ``q`` and namespace ``dramatiq``:

- ``dramatiq:q``: a list of Redis message ids ready to fetch; ``dramatiq:q.msgs``: id -> message,
  for ready and fetched messages alike (an ack deletes the entry);
- ``dramatiq:__acks__.<worker id>.q``: a set per worker of the messages it fetched and has not
  acked yet (in flight, prefetched ones included);
- ``dramatiq:__heartbeats__``: worker id -> its last heartbeat (ms). A worker whose heartbeat is
  older than the heartbeat timeout is dead: the maintenance pass of a live worker consuming ``q``
  (every ``shared.broker.MAINTENANCE_PERIOD_MS``) puts what it holds back on ``q``;
- ``dramatiq:q.DQ`` and ``dramatiq:q.DQ.msgs``: the delay queue (retries waiting for their time).
  A worker fetches delayed messages at once and holds them until due, so they are counted from the
  ``.DQ.msgs`` hash, which keeps them until they move back to ``q``;
- ``dramatiq:q.XQ``: dead letters, a sorted set of Redis ids scored by the time of death (ms),
  with their messages in ``dramatiq:q.XQ.msgs``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from dramatiq.brokers.redis import RedisBroker

from shared.broker import IDLE_WAIT_MS, MAINTENANCE_PERIOD_MS
from workers.operations.broker_queues import (
    BrokerLetter,
    BrokerQueues,
    HeldDeadLetters,
    InFlightHolder,
    QueueCounts,
    broker_letter,
    iter_chunks,
    parse_dramatiq_message,
)


class RedisQueues(BrokerQueues):
    kind = "redis"
    in_flight_meaning = "fetched by a worker and not acked yet (prefetched included)"

    def __init__(self, broker: RedisBroker, *, owns_broker: bool = False) -> None:
        super().__init__(broker, owns_broker=owns_broker)
        self.client = broker.client
        self.namespace = broker.namespace

    def key(self, name: str) -> str:
        return f"{self.namespace}:{name}"

    def counts(self, queue_names: Sequence[str]) -> dict[str, QueueCounts]:
        holders = self._holders()
        with self.client.pipeline(transaction=False) as pipe:
            for name in queue_names:
                pipe.llen(self.key(name))
                pipe.hlen(self.key(f"{name}.DQ.msgs"))
                pipe.zcard(self.key(f"{name}.XQ"))
                pipe.lindex(self.key(name), 0)
            replies = pipe.execute()
        counts = {}
        for index, name in enumerate(queue_names):
            ready, delayed, dead, head = replies[index * 4 : index * 4 + 4]
            held = holders.get(name, ())
            counts[name] = QueueCounts(
                ready=ready,
                delayed=delayed,
                in_flight=sum(holder.messages for holder in held),
                dead=dead,
                consumers=None,
                oldest_ready_at=self._enqueued_at(name, head),
                in_flight_dead=sum(holder.messages for holder in held if holder.dead),
                holders=held,
            )
        return counts

    def _holders(self) -> dict[str, tuple[InFlightHolder, ...]]:
        """Who holds fetched-but-unacked messages, per queue, from every worker's ack sets and heartbeat."""
        prefix = self.key("__acks__.")
        keys = [key.decode() if isinstance(key, bytes) else key for key in self.client.scan_iter(match=f"{prefix}*", count=500)]
        if not keys:
            return {}
        held: list[tuple[str, str]] = []
        for key in keys:
            # <prefix><worker id>.<queue>: worker ids are UUIDs, without dots
            worker_id, _, queue_name = key[len(prefix) :].partition(".")
            held.append((worker_id, queue_name))
        workers = sorted({worker_id for worker_id, _ in held})
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.scard(key)
            for worker_id in workers:
                pipe.zscore(self.key("__heartbeats__"), worker_id)
            replies = pipe.execute()
        sizes, beats = replies[: len(keys)], dict(zip(workers, replies[len(keys) :]))
        now_ms = time.time() * 1000
        found: dict[str, list[InFlightHolder]] = defaultdict(list)
        for (worker_id, queue_name), size in zip(held, sizes):
            if size:  # an empty set is no key in Redis; one emptied between the two looks is nothing held
                found[queue_name].append(self._holder(worker_id, size, beats[worker_id], now_ms))
        return {name: tuple(sorted(each, key=lambda h: (-h.messages, h.worker_id))) for name, each in found.items()}

    def _holder(self, worker_id: str, messages: int, heartbeat_ms: float | None, now_ms: float) -> InFlightHolder:
        timeout_ms = getattr(self.broker, "heartbeat_timeout", 60_000)
        if heartbeat_ms is None:  # no heartbeat: no maintenance pass ever finds its acks
            return InFlightHolder(worker_id, messages, None, dead=True, requeue_within=None)
        age_ms = max(now_ms - heartbeat_ms, 0.0)
        dead = age_ms >= timeout_ms  # dispatch.lua: a heartbeat at or before now - timeout
        # The next pass of a live consumer of the queue, one watch run late at most
        requeue_within = (MAINTENANCE_PERIOD_MS + IDLE_WAIT_MS) / 1000 if dead else None
        return InFlightHolder(worker_id, messages, round(age_ms / 1000, 1), dead=dead, requeue_within=requeue_within)

    def _enqueued_at(self, queue_name: str, redis_message_id: bytes | None) -> datetime | None:
        if redis_message_id is None:
            return None
        raw = self.client.hget(self.key(f"{queue_name}.msgs"), redis_message_id)
        if raw is None:  # fetched meanwhile
            return None
        timestamp = parse_dramatiq_message(raw).get("message_timestamp")
        return _moment(timestamp)

    @contextmanager
    def hold_dead_letters(self, queue_name: str) -> Iterator[HeldDeadLetters]:
        # Nothing to hold on Redis: a snapshot of the Redis ids is enough to remove exactly these copies.
        yield _RedisDeadLetters(self, queue_name)


class _RedisDeadLetters(HeldDeadLetters):
    def __init__(self, queues: RedisQueues, queue_name: str) -> None:
        self.client = queues.client
        self.ids_key = queues.key(f"{queue_name}.XQ")
        self.messages_key = f"{self.ids_key}.msgs"
        members = self.client.zrange(self.ids_key, 0, -1, withscores=True)
        stored = self.client.hmget(self.messages_key, [member for member, _ in members]) if members else []
        self.letters = [
            broker_letter(queue_name, raw, _moment(score), member)
            for (member, score), raw in zip(members, stored)
            if raw is not None
        ]

    def remove(self, letters: Iterable[BrokerLetter]) -> int:
        handles = [letter.handle for letter in letters]
        removed = 0
        for chunk in iter_chunks(handles):
            with self.client.pipeline(transaction=True) as multi:
                multi.zrem(self.ids_key, *chunk)
                multi.hdel(self.messages_key, *chunk)
                removed += multi.execute()[0]
        gone = set(handles)
        self.letters = [letter for letter in self.letters if letter.handle not in gone]
        return removed


def _moment(milliseconds: object) -> datetime | None:
    """A time in milliseconds since the epoch, as anyone may have written it (a string, 1e300): None when it is none."""
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool):
        return None
    try:
        return datetime.fromtimestamp(milliseconds / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
