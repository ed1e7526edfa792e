"""Our Redis consumer (shared.broker): fetches with ids, and keeps dramatiq's maintenance pass."""

from __future__ import annotations

import threading

import dramatiq
import fakeredis

from shared.broker import WAKE_DEPTH, make_broker, wake_key
from shared.publisher import dramatiq_message
from shared.settings import Settings
from shared.waiting import wait_until


def test_a_dead_workers_fetched_messages_come_back_through_a_live_consumers_fetch() -> None:
    server = fakeredis.FakeServer()
    settings = Settings(redis_maintenance_chance=1_000_000)  # every fetch: the pass under test
    brokers = []
    for _ in range(2):
        broker = make_broker(settings)
        broker.client = fakeredis.FakeRedis(server=server)  # two workers, one Redis
        broker.scripts = {name: broker.client.register_script(script.script) for name, script in broker.scripts.items()}
        dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
        brokers.append(broker)
    dead, alive = brokers
    for number in range(3):
        dead.enqueue(dramatiq_message("q", "a", f"00000000-0000-4000-8000-00000000000{number}", "{}"))

    # Given a worker that fetched every message, then died (its heartbeat long past)
    fetched = dead.consume("q", prefetch=3, timeout=100)
    next(fetched)
    client = alive.client
    assert client.llen("dramatiq:q") == 0
    client.zadd("dramatiq:__heartbeats__", {dead.broker_id: 0})

    # When a live worker fetches from the same queue
    consumer = alive.consume("q", prefetch=3, timeout=100)
    received = [next(consumer) for _ in range(3)]

    # Then it got the dead worker's three messages, each by the id it is stored under
    assert sorted(message.message_id for message in received if message) == [
        f"00000000-0000-4000-8000-00000000000{n}" for n in range(3)
    ]
    assert client.scard(f"dramatiq:__acks__.{dead.broker_id}.q") == 0


def test_an_idle_consumer_is_woken_by_an_enqueue_instead_of_sleeping_out_its_idle_timeout() -> None:
    broker = make_broker(Settings())
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    # An idle timeout far longer than the test waits: only a wake-up can bring the message in time
    consumer = broker.consume("q", prefetch=1, timeout=120_000)
    waiting = threading.Event()
    wait_and_fetch = broker.wait_and_fetch

    def noted_wait(queue_name: str, count: int, timeout_ms: int) -> list[tuple[str, bytes]]:
        waiting.set()
        return wait_and_fetch(queue_name, count, timeout_ms)

    broker.wait_and_fetch = noted_wait
    fetched: list[dramatiq.MessageProxy | None] = []

    def consume() -> None:
        fetched.append(next(consumer))  # nothing yet: waits for a wake-up
        fetched.append(next(consumer))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    wait_until(waiting.is_set, timeout=10, what="the consumer waiting")

    broker.enqueue(dramatiq_message("q", "a", "00000000-0000-4000-8000-000000000001", "{}"))

    thread.join(timeout=30)
    assert not thread.is_alive(), "the enqueue did not wake the idle consumer"
    assert [message.message_id if message else None for message in fetched] == [None, "00000000-0000-4000-8000-000000000001"]


def test_enqueues_keep_a_bounded_number_of_wake_tokens() -> None:
    broker = make_broker(Settings())
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})

    for number in range(WAKE_DEPTH * 3):
        broker.enqueue(dramatiq_message("q", "a", f"00000000-0000-4000-8000-{number:012d}", "{}"))

    assert broker.client.llen(wake_key(broker.namespace, "q")) == WAKE_DEPTH
    assert broker.client.llen("dramatiq:q") == WAKE_DEPTH * 3
