"""A dead Redis worker's messages come back on a timer (shared.broker ``_IdleWatch``, ``maintain``):
every worker process runs dramatiq's maintenance pass on its queues every ``MAINTENANCE_PERIOD_MS``,
with the default settings, while a live worker keeps its heartbeat however busy its threads are."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import dramatiq
import fakeredis
import pytest
import redis.exceptions
from dramatiq.middleware import CurrentMessage

from shared import broker as broker_module
from shared.broker import MAINTENANCE_PERIOD_MS, _IdleWatch, _RedisBroker, make_broker, wake_key
from shared.publisher import dramatiq_message
from shared.settings import Settings
from shared.waiting import wait_until
from tests.conftest import RedisServer

HEARTBEATS = "dramatiq:__heartbeats__"


def message(number: int) -> dramatiq.Message:
    return dramatiq_message("q", "a", f"00000000-0000-4000-8000-{number:012d}", "{}")


def with_actor(broker: dramatiq.Broker) -> _RedisBroker:
    assert isinstance(broker, _RedisBroker)
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    return broker


@pytest.fixture(params=["embedded", "redis"])
def two_workers(request: pytest.FixtureRequest) -> Iterator[tuple[_RedisBroker, _RedisBroker]]:
    """Two worker processes' brokers on one Redis, with the DEFAULT settings (heartbeat timeout,
    maintenance chance): the embedded Redis, and the real one."""
    if request.param == "embedded":
        server = fakeredis.FakeServer()
        brokers = []
        for _ in range(2):
            broker = with_actor(make_broker(Settings()))
            broker.client = fakeredis.FakeRedis(server=server)  # two workers, one Redis
            broker.scripts = {name: broker.client.register_script(script.script) for name, script in broker.scripts.items()}
            brokers.append(broker)
    else:
        url = request.getfixturevalue("redis_db").url
        brokers = [with_actor(make_broker(Settings(broker_url=url))) for _ in range(2)]
    yield brokers[0], brokers[1]
    for broker in brokers:
        broker.close()


def test_the_defaults_bring_a_dead_workers_messages_back_within_fifteen_seconds() -> None:
    settings = Settings()
    # The heartbeat timeout, then a pass at most one period (and one watch run) later
    assert settings.heartbeat_timeout_ms + MAINTENANCE_PERIOD_MS + broker_module.IDLE_WAIT_MS <= 15_000
    assert settings.redis_maintenance_chance == 0  # nothing left to chance
    # A live worker refreshes its heartbeat many times within the timeout
    assert settings.heartbeat_timeout_ms >= 10 * broker_module.IDLE_WAIT_MS


def test_an_old_maintenance_chance_setting_is_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALWRITE_REDIS_MAINTENANCE_CHANCE", "1000")  # a deployment's environment from before
    assert Settings().redis_maintenance_chance == 1000


def test_the_idle_watch_runs_the_maintenance_pass_on_its_period(
    two_workers: tuple[_RedisBroker, _RedisBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, broker = two_workers
    clock = [100.0]
    watch = _IdleWatch(broker, clock=lambda: clock[0])
    watch.watch("q")
    watch.watch("q.DQ")
    monkeypatch.setattr(broker_module.random, "uniform", lambda low, high: 0.5)  # this process's phase in the period
    passes: list[tuple[float, list[str]]] = []
    maintain = broker.maintain
    monkeypatch.setattr(broker, "maintain", lambda queues: (passes.append((clock[0], list(queues))), maintain(queues)))

    for moment in (100.0, 100.4, 100.5, 101.0, 102.4, 102.5, 103.0, 104.0, 110.0, 110.4, 110.5):
        clock[0] = moment
        watch.check()

    # Every 2 s from 100.5; the watch stalled from 104 to 110 makes one pass, and keeps its beat
    assert [moment for moment, _ in passes] == [100.5, 102.5, 110.0, 110.5]
    assert all(queues == ["q", "q.DQ"] for _, queues in passes)


def test_a_process_starts_its_beat_at_a_random_point_of_the_first_period(two_workers: tuple[_RedisBroker, _RedisBroker]) -> None:
    _, broker = two_workers
    firsts = set()
    for _ in range(20):
        clock = [50.0]
        watch = _IdleWatch(broker, clock=lambda: clock[0])
        watch.watch("q")
        while not watch.maintenance_due():
            clock[0] += 0.1
        firsts.add(round(clock[0] - 50.0, 1))
    assert max(firsts) <= MAINTENANCE_PERIOD_MS / 1000
    assert len(firsts) > 1  # spread out, not all at once


def test_a_dead_workers_messages_are_back_on_the_queue_and_a_consumer_woken_at_the_next_pass(
    two_workers: tuple[_RedisBroker, _RedisBroker],
) -> None:
    dead, alive = two_workers
    client = alive.client
    for number in range(3):
        dead.enqueue(message(number))
    # Given a worker that fetched every message, then died: its heartbeat older than the (default) timeout
    assert len(dead.fetch_with_ids("q", 3)) == 3
    client.delete(wake_key("dramatiq", "q"))
    now_ms = int(time.time() * 1000)
    client.zadd(HEARTBEATS, {dead.broker_id: now_ms - alive.heartbeat_timeout - 1_000})
    watch = alive.idle_watch
    watch.watch("q")
    watch._next_maintenance = 0.0  # due

    # When the live worker's watch runs its pass
    watch.check()

    # Then the messages are back on the queue, a consumer is woken for them, and the dead worker is forgotten
    assert client.llen("dramatiq:q") == 3
    assert client.exists(f"dramatiq:__acks__.{dead.broker_id}.q") == 0
    assert client.llen(wake_key("dramatiq", "q")) == 1
    assert client.zscore(HEARTBEATS, dead.broker_id) is None
    consumer = alive.consume("q", prefetch=3, timeout=100)
    received = [next(consumer) for _ in range(3)]
    assert sorted(m.message_id for m in received if m) == [message(n).message_id for n in range(3)]


def test_a_pass_leaves_alone_a_worker_whose_heartbeat_is_within_the_timeout(two_workers: tuple[_RedisBroker, _RedisBroker]) -> None:
    slow, alive = two_workers
    client = alive.client
    for number in range(2):
        slow.enqueue(message(number))
    assert len(slow.fetch_with_ids("q", 2)) == 2
    # Silent for most of the timeout (a frozen process, say), not for all of it
    client.zadd(HEARTBEATS, {slow.broker_id: int(time.time() * 1000) - alive.heartbeat_timeout + 3_000})

    alive.maintain(["q", "q.DQ"])

    assert client.llen("dramatiq:q") == 0
    assert client.scard(f"dramatiq:__acks__.{slow.broker_id}.q") == 2


def test_a_pass_still_runs_when_redis_forgot_the_maintenance_script(two_workers: tuple[_RedisBroker, _RedisBroker]) -> None:
    dead, alive = two_workers
    dead.enqueue(message(1))
    assert len(dead.fetch_with_ids("q", 1)) == 1
    alive.client.zadd(HEARTBEATS, {dead.broker_id: 1})
    alive.client.script_flush()  # Redis restarted, or an operator flushed its scripts

    alive.maintain(["q"])

    assert alive.client.llen("dramatiq:q") == 1


def test_a_worker_whose_threads_are_all_busy_computing_keeps_its_heartbeat(redis_db: RedisServer) -> None:
    """Every worker thread in a long handler computing in Python, and its consumer fetching nothing
    (no room): the idle watch, a thread of its own, keeps the heartbeat fresh, and another process's
    maintenance passes take nothing from it. A short timeout here only keeps the test short."""
    timeout_ms = 2_000
    busy = make_broker(Settings(broker_url=redis_db.url, heartbeat_timeout_ms=timeout_ms))
    assert isinstance(busy, _RedisBroker)
    other = make_broker(Settings(broker_url=redis_db.url, heartbeat_timeout_ms=timeout_ms))
    assert isinstance(other, _RedisBroker)
    release, started, handled = threading.Event(), [], []
    lock = threading.Lock()

    def compute(_body: str) -> None:
        message_id = CurrentMessage.get_current_message().message_id
        with lock:
            started.append(message_id)
        while not release.is_set():
            sum(range(20_000))  # holds the GIL but for the interpreter's switches
        with lock:
            handled.append(message_id)

    dramatiq.Actor(compute, broker=busy, actor_name="a", queue_name="q", priority=0, options={})
    for number in range(4):  # two running, two prefetched: the consumer has no room, and fetches nothing
        busy.enqueue(message(number))
    worker = dramatiq.Worker(busy, worker_threads=2, worker_timeout=100)
    worker.start()
    acks = f"dramatiq:__acks__.{busy.broker_id}.q"
    client = redis_db.client
    try:
        wait_until(lambda: len(started) == 2 and client.scard(acks) == 4, timeout=30, what="both threads busy, four fetched")
        oldest = [0.0]
        busy_until = time.monotonic() + 3 * timeout_ms / 1000

        def passes_over_three_timeouts() -> bool:
            other.maintain(["q", "q.DQ"])
            beat = client.zscore(HEARTBEATS, busy.broker_id)
            oldest[0] = max(oldest[0], time.time() * 1000 - (beat or 0))
            return time.monotonic() >= busy_until

        wait_until(passes_over_three_timeouts, timeout=60, interval=0.1, what="three heartbeat timeouts of passes")

        assert len(started) == 2  # nobody else got the messages
        assert client.scard(acks) == 4 and client.llen("dramatiq:q") == 0
        assert oldest[0] < timeout_ms, f"the heartbeat went {oldest[0]:.0f} ms without a refresh"
    finally:
        release.set()
    try:
        wait_until(lambda: len(handled) == 4 and client.scard(acks) == 0, timeout=30, what="every message handled")
        assert sorted(handled) == [message(n).message_id for n in range(4)]  # each once
    finally:
        worker.stop()
        busy.close()
        other.close()


def test_a_failing_pass_never_costs_the_heartbeat(two_workers: tuple[_RedisBroker, _RedisBroker], monkeypatch: pytest.MonkeyPatch) -> None:
    _, broker = two_workers
    watch = broker.idle_watch
    watch.watch("q")
    watch._next_maintenance = 0.0  # due

    def refused(_queues: list[str]) -> None:
        raise redis.exceptions.ResponseError("unknown command 'keys'")  # a Redis with KEYS renamed away

    monkeypatch.setattr(broker, "maintain", refused)
    broker.client.zadd(HEARTBEATS, {broker.broker_id: 1})

    watch.check()

    assert broker.client.zscore(HEARTBEATS, broker.broker_id) > 1


def test_right_after_an_outage_a_worker_leaves_the_others_a_heartbeat_timeout_to_come_back(
    two_workers: tuple[_RedisBroker, _RedisBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    other, back = two_workers
    client = back.client
    for number in range(2):
        other.enqueue(message(number))
    assert len(other.fetch_with_ids("q", 2)) == 2
    # Redis was away longer than the timeout: every worker's heartbeat is old, the other's still is
    old = int(time.time() * 1000) - back.heartbeat_timeout - 5_000
    client.zadd(HEARTBEATS, {other.broker_id: old})
    back.availability.failed("connection refused")
    back.availability.answered()  # this process found Redis again just now
    watch = _IdleWatch(back)
    watch.watch("q")
    monkeypatch.setattr(watch, "maintenance_due", lambda: True)

    # Within a heartbeat timeout of its own return, its passes give back nothing the other holds
    watch.check()
    assert client.llen("dramatiq:q") == 0
    assert client.scard(f"dramatiq:__acks__.{other.broker_id}.q") == 2

    # A timeout later the other never came back: it is dead, and its messages go back on the queue
    assert back.availability.back_since is not None
    back.availability.back_since -= back.heartbeat_timeout / 1000
    watch.check()
    assert client.llen("dramatiq:q") == 2
    assert client.scard(f"dramatiq:__acks__.{other.broker_id}.q") == 0
