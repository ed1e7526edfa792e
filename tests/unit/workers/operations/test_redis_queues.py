"""The Redis view of the queues, against dramatiq's own Lua on the embedded broker (fakeredis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dramatiq
import fakeredis
import pytest
from dramatiq.brokers.redis import RedisBroker

from shared.publisher import dramatiq_message
from workers.operations.redis_queues import RedisQueues

QUEUE = "finance.commands"


@pytest.fixture
def broker() -> Iterator[RedisBroker]:
    broker = RedisBroker(client=fakeredis.FakeRedis(server=fakeredis.FakeServer()), middleware=[])
    broker.declare_queue(QUEUE)
    yield broker
    broker.close()


def send(broker: RedisBroker, *, delay: int | None = None) -> str:
    message_id = str(uuid.uuid4())
    broker.enqueue(dramatiq_message(QUEUE, "receive_finance_commands", message_id, "{}"), delay=delay)
    return message_id


def fetch(broker: RedisBroker, count: int) -> tuple[dramatiq.Consumer, list[dramatiq.MessageProxy]]:
    consumer = broker.consume(QUEUE, prefetch=count, timeout=100)
    return consumer, [next(consumer) for _ in range(count)]


def test_ready_delayed_and_in_flight_are_counted_and_the_oldest_ready_dated(broker: RedisBroker) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(3):
        send(broker)
    send(broker, delay=60_000)
    consumer, fetched = fetch(broker, 1)

    counts = RedisQueues(broker).counts([QUEUE, "dataverse.commands"])

    assert (counts[QUEUE].ready, counts[QUEUE].delayed, counts[QUEUE].in_flight, counts[QUEUE].dead) == (2, 1, 1, 0)
    assert before <= counts[QUEUE].oldest_ready_at <= datetime.now(UTC)
    empty = counts["dataverse.commands"]
    assert (empty.ready, empty.delayed, empty.in_flight, empty.dead, empty.oldest_ready_at) == (0, 0, 0, 0, None)
    consumer.close()


def test_dead_letters_are_listed_and_only_the_copies_held_are_removed(broker: RedisBroker) -> None:
    first, second = send(broker), send(broker)
    consumer, fetched = fetch(broker, 2)
    for message in fetched:
        consumer.nack(message)
    queues = RedisQueues(broker)
    assert queues.counts([QUEUE])[QUEUE].dead == 2

    with queues.hold_dead_letters(QUEUE) as held:
        assert sorted(letter.message_id for letter in held.letters) == sorted([first, second])
        assert all(letter.dead_at is not None and letter.body == "{}" for letter in held.letters)
        removed = held.remove([letter for letter in held.letters if letter.message_id == first])

    assert removed == 1
    assert [letter.message_id for letter in queues.dead_letters(QUEUE)] == [second]
    consumer.close()
