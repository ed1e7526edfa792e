"""A stopping Redis consumer gives back what it prefetched but never handed to a worker thread."""

from __future__ import annotations

from types import SimpleNamespace

import dramatiq

from shared.broker import make_broker
from shared.middleware.requeue_prefetched import RequeuePrefetched
from shared.publisher import dramatiq_message
from shared.settings import Settings


def test_prefetched_messages_go_back_on_the_queue_when_the_consumer_thread_stops():
    # Given a Redis consumer that fetched three messages and handed out only the first
    broker = make_broker(Settings())
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    for number in range(3):
        broker.enqueue(dramatiq_message("q", "a", f"00000000-0000-4000-8000-00000000000{number}", str(number)))
    client = broker.client
    consumer = broker.consume("q", prefetch=3, timeout=100)
    handed_out = next(consumer)
    acks = f"dramatiq:__acks__.{broker.broker_id}.q"
    assert (client.llen("dramatiq:q"), client.scard(acks)) == (0, 3)

    # When its thread shuts down
    RequeuePrefetched().before_consumer_thread_shutdown(broker, SimpleNamespace(consumer=consumer, queue_name="q"))

    # Then the two it kept are back on the queue; the one being worked on stays with the worker
    assert client.llen("dramatiq:q") == 2
    assert client.smembers(acks) == {handed_out.options["redis_message_id"].encode()}
    assert consumer.message_cache == []


def test_a_consumer_thread_without_a_consumer_or_a_cache_is_left_alone():
    RequeuePrefetched().before_consumer_thread_shutdown(None, SimpleNamespace(consumer=None, queue_name="q"))
    RequeuePrefetched().before_consumer_thread_shutdown(None, SimpleNamespace(consumer=object(), queue_name="q"))
