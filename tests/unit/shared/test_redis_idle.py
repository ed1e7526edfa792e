"""Idle Redis consumers (shared.broker): one round trip per enqueue and per wake-up, one idle watch
per worker instead of a poll per consumer, and waits a stopping worker ends at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis.connection

from shared import broker as broker_module
from shared.broker import _RedisBroker, make_broker, stop_key, wake_key
from shared.publisher import dramatiq_message
from shared.settings import Settings
from shared.waiting import wait_until
from tests.conftest import RedisServer

MESSAGE_ID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture(params=["embedded", "redis"])
def broker(request: pytest.FixtureRequest) -> Iterator[_RedisBroker]:
    """A Redis broker with one actor on queue ``q``: the embedded one, and one on the real Redis
    (whose pipelining the wake-up relies on)."""
    if request.param == "embedded":
        settings = Settings()
    else:
        settings = Settings(broker_url=request.getfixturevalue("redis_db").url)
    made = make_broker(settings)
    assert isinstance(made, _RedisBroker)
    dramatiq.Actor(lambda body: None, broker=made, actor_name="a", queue_name="q", priority=0, options={})
    yield made
    made.close()


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts what is sent to Redis (real Redis only: the embedded one has no socket)."""
    count = [0]
    send = redis.connection.AbstractConnection.send_packed_command

    def counted(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        count[0] += 1
        return send(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return count


def message(number: int = 1) -> dramatiq.Message:
    return dramatiq_message("q", "a", f"00000000-0000-4000-8000-{number:012d}", "{}")


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


def test_an_enqueue_stores_the_message_and_wakes_the_queue_in_one_round_trip(
    redis_db: RedisServer, round_trips: list[int]
) -> None:
    broker = make_broker(Settings(broker_url=redis_db.url))
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    broker.maintenance_chance = 0  # dramatiq's maintenance pass never due
    broker.enqueue(message())  # connected, and the script loaded (a server whose scripts were flushed asks for it)
    round_trips[0] = 0

    broker.enqueue(message())

    assert round_trips[0] == 1
    client = redis_db.client
    assert (client.llen("dramatiq:q"), client.hlen("dramatiq:q.msgs"), client.llen(wake_key("dramatiq", "q"))) == (2, 2, 2)


def test_a_delayed_enqueue_wakes_no_work_queue_consumer_but_nudges_this_workers_delay_consumer(broker: _RedisBroker) -> None:
    consumer = broker.consume("q.DQ", prefetch=10, timeout=100)
    thread, received = in_thread(lambda: (next(consumer), next(consumer))[1])  # the wait, then the fetch
    time.sleep(0.2)  # found nothing: waits for a nudge (for up to IDLE_WAIT_LIMIT_MS)

    started = time.monotonic()
    broker.enqueue(message(), delay=10)

    thread.join(timeout=10)
    assert received and received[0] is not None and time.monotonic() - started < 2
    assert broker.client.llen(wake_key("dramatiq", "q.DQ")) == 0
    assert broker.client.llen(wake_key("dramatiq", "q")) == 0


def test_a_fetch_that_empties_the_queue_drops_the_wake_tokens_it_made_stale(broker: _RedisBroker) -> None:
    for number in range(3):
        broker.enqueue(message(number))
    assert broker.client.llen(wake_key("dramatiq", "q")) == 3

    assert len(broker.fetch_with_ids("q", 2)) == 2  # one left: the tokens may still wake someone for it
    assert broker.client.llen(wake_key("dramatiq", "q")) == 3
    assert len(broker.fetch_with_ids("q", 2)) == 1  # the queue is empty now
    assert broker.client.llen(wake_key("dramatiq", "q")) == 0


def test_an_idle_consumer_is_woken_and_fetches_in_one_round_trip(redis_db: RedisServer, round_trips: list[int]) -> None:
    broker = make_broker(Settings(broker_url=redis_db.url))
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    broker.maintenance_chance = 0
    consumer = broker.consume("q", prefetch=4, timeout=100)
    assert next(consumer) is None  # found the queue empty: waits for a wake-up from now on
    publisher = make_broker(Settings(broker_url=redis_db.url))  # its own connections
    publisher.client.ping()
    round_trips[0] = 0
    thread, received = in_thread(lambda: next(consumer))
    time.sleep(0.2)

    publisher.enqueue(message())

    thread.join(timeout=10)
    assert received and received[0] is not None and received[0].message_id == MESSAGE_ID
    assert round_trips[0] == 2  # the enqueue, and the consumer's wait with its fetch


def test_the_idle_watch_wakes_consumers_for_messages_no_enqueue_of_ours_woke_them_for(broker: _RedisBroker) -> None:
    consumer = broker.consume("q", prefetch=4, timeout=100)
    assert next(consumer) is None
    thread, received = in_thread(lambda: next(consumer))
    time.sleep(0.2)
    # Another language's publisher: the message, and no wake token
    data = message().copy(options={"redis_message_id": "foreign-1"}).encode()
    broker.client.hset("dramatiq:q.msgs", "foreign-1", data)
    broker.client.rpush("dramatiq:q", "foreign-1")

    broker.idle_watch.check()

    thread.join(timeout=10)
    assert received and received[0] is not None and received[0].options["redis_message_id"] == "foreign-1"


def test_the_idle_watch_keeps_the_heartbeat_of_a_worker_whose_consumers_all_wait(broker: _RedisBroker) -> None:
    broker.idle_watch.watch("q")
    broker.client.zadd("dramatiq:__heartbeats__", {broker.broker_id: 0})

    broker.idle_watch.check()

    assert broker.client.zscore("dramatiq:__heartbeats__", broker.broker_id) > 0


def test_the_idle_watch_nudges_the_consumer_of_a_delay_queue_holding_messages(broker: _RedisBroker) -> None:
    consumer = broker.consume("q.DQ", prefetch=10, timeout=100)
    thread, received = in_thread(lambda: (next(consumer), next(consumer))[1])  # the wait, then the fetch
    time.sleep(0.2)  # found nothing: waits for a nudge
    # A retry another worker put on the delay queue (its own enqueue nudged its own consumer only)
    data = message().copy(queue_name="q.DQ", options={"redis_message_id": "retry-1", "eta": 0}).encode()
    broker.client.hset("dramatiq:q.DQ.msgs", "retry-1", data)
    broker.client.rpush("dramatiq:q.DQ", "retry-1")

    broker.idle_watch.check()

    thread.join(timeout=10)
    assert received and received[0] is not None and received[0].options["redis_message_id"] == "retry-1"


def test_a_stopping_worker_ends_its_consumers_waits_at_once(broker: _RedisBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_module, "DELAY_QUEUE_POLL_MS", 1_000)  # the production value, not the tests'
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_until(lambda: len(worker.consumers) == 2, timeout=10, what="both consumers running")
        time.sleep(0.5)  # both idle: one waits for a wake-up, the other for a nudge
    finally:
        started = time.monotonic()
        worker.stop()
    # A wait not ended would last up to IDLE_WAIT_LIMIT_MS (4 s)
    assert time.monotonic() - started < 2
    assert broker.client.exists(stop_key("dramatiq", broker.broker_id)) == 0
    assert not broker.idle_watch.running


def test_a_fetch_after_a_wait_never_dates_the_heartbeat_back(broker: _RedisBroker) -> None:
    # The wait's fetch runs when the wait ends, with the time taken before it: the idle watch's
    # heartbeat, written meanwhile, is later
    later = int(time.time() * 1000) + 60_000
    for number in range(2):
        broker.enqueue(message(number))
    broker.client.zadd("dramatiq:__heartbeats__", {broker.broker_id: later})

    assert len(broker.wait_and_fetch("q", 1, 100)) == 1
    assert broker.client.zscore("dramatiq:__heartbeats__", broker.broker_id) == later

    # An older heartbeat moves forward
    broker.client.zadd("dramatiq:__heartbeats__", {broker.broker_id: 42})
    assert len(broker.wait_and_fetch("q", 1, 100)) == 1
    assert broker.client.zscore("dramatiq:__heartbeats__", broker.broker_id) > 42


def test_a_wait_still_fetches_when_redis_forgot_the_fetch_script(broker: _RedisBroker) -> None:
    broker.enqueue(message())
    broker.client.script_flush()  # Redis restarted, or an operator flushed its scripts

    [(_redis_id, data)] = broker.wait_and_fetch("q", 1, 100)

    assert dramatiq.Message.decode(data).message_id == MESSAGE_ID
