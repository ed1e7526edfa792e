"""The operator tools on RabbitMQ, through kombu.

dramatiq declares three durable queues per queue ``q``: ``q`` (work), ``q.DQ`` (retries waiting
for their time) and ``q.XQ`` (dead letters, with a message TTL). What AMQP can tell about them:

- counts come from passive ``queue.declare``: messages ready for delivery and consumers. Messages
  delivered and not acked yet are not counted anywhere AMQP shows, so "in flight" is not known
  (the management plugin's HTTP API has it; we do not depend on it). Likewise a worker fetches a
  retry from ``q.DQ`` at once and holds it until due, so "delayed" counts only retries no worker
  has fetched yet, and the age of the oldest ready message is not known without consuming it;
- dead letters are browsed by getting every message of ``q.XQ`` without acking; the ones a
  repair removes are acked, the others are rejected back to the queue (RabbitMQ puts a requeued
  message back at its place and keeps its expiry). The work queues are never consumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import amqp.exceptions
import dramatiq
from kombu import Connection

from workers.operations.broker_queues import (
    BrokerLetter,
    BrokerQueues,
    HeldDeadLetters,
    QueueCounts,
    broker_letter,
)


class RabbitmqQueues(BrokerQueues):
    kind = "rabbitmq"
    in_flight_meaning = (
        "not known on RabbitMQ (AMQP does not count delivered, unacked messages; the management API's "
        "messages_unacknowledged does); a dead consumer's come back as soon as its connection drops"
    )

    def __init__(self, broker: dramatiq.Broker, url: str, *, owns_broker: bool = False) -> None:
        super().__init__(broker, owns_broker=owns_broker)
        self.connection = Connection(url, connect_timeout=5)

    def counts(self, queue_names: Sequence[str]) -> dict[str, QueueCounts]:
        counts = {}
        for name in queue_names:
            ready, consumers = self._declared(name)
            delayed, _ = self._declared(f"{name}.DQ")
            dead, _ = self._declared(f"{name}.XQ")
            counts[name] = QueueCounts(
                ready=ready, delayed=delayed, in_flight=None, dead=dead, consumers=consumers, oldest_ready_at=None
            )
        return counts

    def _declared(self, queue_name: str) -> tuple[int, int]:
        """(messages ready, consumers) of a queue; (0, 0) while no worker or publisher has declared it."""
        channel = self.connection.channel()
        try:
            declared = channel.queue_declare(queue=queue_name, passive=True)
        except amqp.exceptions.NotFound:  # the server closed this channel
            return 0, 0
        channel.close()
        return declared.message_count, declared.consumer_count

    @contextmanager
    def hold_dead_letters(self, queue_name: str) -> Iterator[HeldDeadLetters]:
        channel = self.connection.channel()
        # The bytes as RabbitMQ holds them, never decoded by a content_encoding the sender chose:
        # their digest is the copy's identity (shared/dead_letters.py copy_digest).
        channel.auto_decode = False
        held = _RabbitmqDeadLetters(channel, queue_name)
        try:
            yield held
        finally:
            held.put_back_the_rest()

    def close(self) -> None:
        self.connection.release()
        super().close()


class _RabbitmqDeadLetters(HeldDeadLetters):
    def __init__(self, channel: Any, queue_name: str) -> None:
        self.channel = channel
        self.letters = []
        self._open: set[int] = set()
        self.queue_name = queue_name
        try:
            # basic_get returns a message or None; unacked ones are not given again on this channel.
            while (message := channel.basic_get(queue=f"{queue_name}.XQ", no_ack=False)) is not None:
                self._open.add(message.delivery_tag)
                self.letters.append(broker_letter(queue_name, message.body, _dead_at(message), message.delivery_tag))
        except amqp.exceptions.NotFound:  # no .XQ declared yet: no dead letters
            self.channel = None

    def remove(self, letters: Iterable[BrokerLetter]) -> int:
        removed = 0
        for letter in letters:
            if letter.handle in self._open:
                self.channel.basic_ack(letter.handle)
                self._open.discard(letter.handle)
                removed += 1
        self.letters = [letter for letter in self.letters if letter.handle in self._open]
        return removed

    def put_back_the_rest(self) -> None:
        if self.channel is None:
            return
        for tag in sorted(self._open):
            self.channel.basic_reject(tag, requeue=True)
        self._open.clear()
        self.channel.close()


def _dead_at(message: Any) -> datetime | None:
    """When RabbitMQ dead-lettered the message: the newest ``x-death`` entry's time."""
    # The headers are the publisher's to write too: any shape is possible.
    headers = message.properties.get("application_headers")
    deaths = headers.get("x-death") if isinstance(headers, dict) else None
    moment = deaths[0].get("time") if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else None
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
