"""Our Redis consumer (shared.broker): fetches with ids, and keeps dramatiq's maintenance pass."""

from __future__ import annotations

import dramatiq
import fakeredis

from shared.broker import make_broker
from shared.publisher import dramatiq_message
from shared.settings import Settings


def test_a_dead_workers_fetched_messages_come_back_through_a_live_consumers_fetch() -> None:
    server = fakeredis.FakeServer()
    settings = Settings(redis_maintenance_chance=1_000_000)  # every fetch: the pass under test
    brokers = []
    for _ in range(2):
        broker = make_broker(settings)
        broker.client = fakeredis.FakeRedis(server=server)  # two workers, one Redis
        broker._fetch_with_ids = broker.client.register_script(broker._fetch_with_ids.script)
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
