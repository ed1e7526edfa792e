"""The broker factory: Redis, RabbitMQ, or the embedded in-process Redis, from one URL."""

from __future__ import annotations

import threading
import time
from functools import partial
from importlib import resources
from typing import Any

import dramatiq
import fakeredis
import pika.exceptions
import redis.exceptions
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.errors import Malformed
from shared.intake import Intake
from shared.logging import get_logger
from shared.middleware.requeue_prefetched import RequeuePrefetched
from shared.settings import Settings

DAY_MS = 86_400_000

log = get_logger(__name__)

#: What a publisher sees when the broker cannot be reached.
BROKER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    dramatiq.errors.BrokerConnectionError,
    redis.exceptions.ConnectionError,
    pika.exceptions.AMQPConnectionError,
    ConnectionError,
)


#: How often a Redis delay-queue consumer holding delayed messages polls at most, so as to hand
#: each to its queue once its eta has passed (dramatiq's consumer thread does that between polls).
#: Delay queues hold only retries waiting out their backoff, so a slower poll costs a retry at most
#: this much more wait. A delay-queue consumer holding none does not poll: the idle watch, or an
#: enqueue of this process, nudges it when its delay queue holds messages.
DELAY_QUEUE_POLL_MS = 1_000

#: An enqueue wakes at most this many idle consumers of its queue (one per worker process at
#: most is needed: the one woken fetches up to its prefetch).
WAKE_DEPTH = 8

#: How often a Redis worker process's idle watch runs (``_IdleWatch``): it refreshes the worker's
#: heartbeat (well under the shortest heartbeat timeout in use, 2 s), wakes the consumers of a
#: queue holding messages nobody woke them for (another language's publisher, which does not wake,
#: waits at most this), and nudges the consumers of delay queues holding messages.
IDLE_WAIT_MS = 500

#: How long an idle Redis consumer waits for a wake-up or a nudge before it fetches anyway. The
#: idle watch wakes it whenever its queue holds messages, so this only bounds what a stalled watch
#: could cost; each idle consumer makes one round trip this often. Less where the client's socket
#: timeout would cut the blocked command short (``_longest_wait_ms``: redis-py's default is 5 s). A
#: stopping worker's consumers are woken, and from then on wait only the idle timeout between fetches.
IDLE_WAIT_LIMIT_MS = 4_000


def wake_key(namespace: str, queue_name: str) -> str:
    """The list an idle consumer of ``queue_name`` blocks on (``BLPOP``) until an enqueue pushes to it."""
    return f"{namespace}:{queue_name}.wake"


def stop_key(namespace: str, worker_id: str) -> str:
    """The list every idle consumer of one worker process blocks on too: a token there ends its wait
    (a stopping worker), where one on a queue's wake list might wake another process's consumer."""
    return f"{namespace}:__stop__.{worker_id}"


def _longest_wait_ms(client: Any) -> int:
    """``IDLE_WAIT_LIMIT_MS``, or four fifths of the client's socket timeout if that is less: a
    blocked ``BLPOP`` must answer before redis-py gives up reading its reply."""
    pool = getattr(client, "connection_pool", None)
    socket_timeout = getattr(pool, "connection_kwargs", {}).get("socket_timeout")
    if not socket_timeout:
        return IDLE_WAIT_LIMIT_MS
    return max(1, min(IDLE_WAIT_LIMIT_MS, int(socket_timeout * 800)))


def _is_delay_queue(queue_name: str) -> bool:
    return queue_name.endswith(".DQ")  # dramatiq.common.dq_name


class _RedisBroker(RedisBroker):
    """dramatiq's Redis broker, whose consumers check what they fetch (``shared.intake``), wait for
    new messages instead of polling for them, and leave the polling of an idle worker to one watch.

    dramatiq's own consumer sleeps between empty fetches, backing off up to the worker's idle
    timeout: a message enqueued meanwhile waits out the sleep, which at light load added up to
    most of a document's latency over its nine hops. Here every enqueue also pushes a token to
    the queue's wake list (``wake_key``, at most ``WAKE_DEPTH`` tokens), in the same script, and an
    idle consumer blocks on that list and fetches in the same round trip (``wait_and_fetch``): it
    fetches as soon as the enqueue is done. What no enqueue of ours woke for (another language's
    publisher, messages put back on a queue, retries in delay queues) the idle watch finds
    (``_IdleWatch``): one script per worker process every ``IDLE_WAIT_MS``, which also keeps the
    worker's heartbeat, instead of a poll per consumer.
    """

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.intake = Intake(self, max_message_bytes)
        #: Set while a worker of this broker shuts down (``IdleConsumers``): idle waits shorten.
        self.stopping = False
        for name in ("redis_fetch", "redis_enqueue", "redis_watch"):
            script = resources.files("shared").joinpath(f"{name}.lua").read_bytes()
            self.scripts[name] = self.client.register_script(script)
        self.idle_watch = _IdleWatch(self)
        #: How long an idle consumer's wait may last (``IDLE_WAIT_LIMIT_MS``, ``_longest_wait_ms``).
        self.longest_wait_ms = _longest_wait_ms(self.client)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        self.idle_watch.watch(queue_name)
        return _CheckedRedisConsumer(self, queue_name, prefetch, timeout)

    def do_enqueue(self, queue_name: str, redis_message_id: str, data: bytes) -> None:
        """dramatiq's enqueue (what ``RedisBroker.enqueue`` calls), which wakes an idle consumer of
        the queue in the same round trip; an enqueue on a delay queue (a retry) nudges this
        process's consumer of it instead."""
        self._maintain_if_due(queue_name, "enqueue")
        delayed = _is_delay_queue(queue_name)
        self.scripts["redis_enqueue"](
            keys=[self.namespace], args=[queue_name, redis_message_id, data, 0 if delayed else WAKE_DEPTH]
        )
        if delayed:
            self.idle_watch.nudge(queue_name)

    def fetch_with_ids(self, queue_name: str, count: int) -> list[tuple[str, bytes]]:
        """Up to ``count`` messages moved to this worker's acks, each as (hash field id, data).

        A fetch of fewer than ``count`` emptied the queue, and dropped its wake tokens."""
        self._maintain_if_due(queue_name, "fetch")
        args = [queue_name, self.broker_id, current_millis(), count]
        return _pairs(self.scripts["redis_fetch"](keys=[self.namespace], args=args))

    def wait_and_fetch(self, queue_name: str, count: int, timeout_ms: int) -> list[tuple[str, bytes]]:
        """``fetch_with_ids`` once the queue's consumers are woken (or this worker stops, or
        ``timeout_ms`` passes), in one round trip: Redis runs a client's pipelined commands in
        order, so the fetch waits for the ``BLPOP`` before it (its heartbeat, dated from before the
        wait, moves the worker's forward only)."""
        self._maintain_if_due(queue_name, "fetch")
        fetch = self.scripts["redis_fetch"]
        with self.client.pipeline(transaction=False) as pipe:
            woken_by = [wake_key(self.namespace, queue_name), stop_key(self.namespace, self.broker_id)]
            pipe.blpop(woken_by, timeout=timeout_ms / 1000)
            # EVALSHA rather than the script object: a pipeline running a script asks Redis first
            # whether it has it (one more round trip each time).
            pipe.evalsha(fetch.sha, 1, self.namespace, queue_name, self.broker_id, current_millis(), count)
            try:
                _woken, flat = pipe.execute()
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                return self.fetch_with_ids(queue_name, count)  # loads the script
        return _pairs(flat)

    def _maintain_if_due(self, queue_name: str, command: str) -> None:
        """As often as dramatiq's own commands would (``maintenance_chance``), run its maintenance
        pass on this queue: a dead worker's fetched messages go back on the queue (after
        ``heartbeat_timeout``) and expired dead letters are dropped. Our scripts do not; this is
        dramatiq's dispatch script fetching none (prefetch 0), which does nothing else."""
        if self._should_do_maintenance(command):
            self.scripts["dispatch"](
                keys=[self.namespace],
                args=[
                    "fetch", current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                    self.dead_message_ttl, 1, self._max_unpack_size(), 0,
                ],
            )

    def end_idle_waits(self, work_queues: int) -> None:
        """Wake this worker's idle consumers (one token each on its stop list, and every nudge)."""
        self.idle_watch.nudge_all()
        key = stop_key(self.namespace, self.broker_id)
        if work_queues:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, *[1] * work_queues)
                pipe.pexpire(key, IDLE_WAIT_LIMIT_MS * 2)  # gone even if this worker dies now
                pipe.execute()

    def forget_idle_waits(self) -> None:
        """Drop the stop tokens no consumer took (a worker restarted on this broker starts clean)."""
        self.client.delete(stop_key(self.namespace, self.broker_id))


class _IdleWatch:
    """One per worker process: what its idle consumers would otherwise each poll Redis for.

    Every ``IDLE_WAIT_MS``, one script (``redis_watch.lua``) refreshes the worker's heartbeat,
    pushes a wake token for each of its work queues that holds messages but no token, and names
    its delay queues that hold messages, whose consumers it then nudges (a ``threading.Event``
    each, which an enqueue of this process on a delay queue, and a stopping worker, set too).
    So an idle bridge (nine queues, nine delay queues) makes two round trips a second, not about
    forty-five, and no message waits longer than it did when each consumer polled.
    """

    def __init__(self, broker: _RedisBroker) -> None:
        self.broker = broker
        self.work_queues: dict[str, None] = {}  # insertion-ordered sets
        self.delay_queues: dict[str, threading.Event] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, queue_name: str) -> None:
        """A consumer of this queue runs in this process (for good: a consumer thread restarts)."""
        if _is_delay_queue(queue_name):
            self.delay_queues.setdefault(queue_name, threading.Event())
        else:
            self.work_queues[queue_name] = None

    def nudge(self, delay_queue: str) -> None:
        event = self.delay_queues.get(delay_queue)
        if event is not None:
            event.set()

    def nudge_all(self) -> None:
        for event in list(self.delay_queues.values()):
            event.set()

    def wait_for_nudge(self, delay_queue: str, timeout_ms: int) -> None:
        """Block until this delay queue's consumer is nudged, or ``timeout_ms`` passes."""
        event = self.delay_queues.setdefault(delay_queue, threading.Event())
        event.wait(timeout_ms / 1000)
        event.clear()  # before the fetch that follows: a nudge from now on is for a later fetch

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="redis-idle-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopped.set()
            thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(IDLE_WAIT_MS / 1000):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the next run may succeed; this thread must not end
                log.exception("the Redis idle watch could not run")

    def check(self) -> None:
        """One run: heartbeat, wake tokens, nudges (see the class); and, as often as an idle
        consumer's fetch used to, dramatiq's maintenance pass on each queue, which gives a dead
        worker's fetched messages back (``_RedisBroker._maintain_if_due``)."""
        work, delay = list(self.work_queues), list(self.delay_queues)
        if not work and not delay:
            return
        broker = self.broker
        ready = broker.scripts["redis_watch"](
            keys=[broker.namespace], args=[broker.broker_id, current_millis(), len(work), *work, *delay]
        )
        for queue_name in ready:
            self.nudge(_text(queue_name))
        for queue_name in work + delay:
            broker._maintain_if_due(queue_name, "fetch")


class IdleConsumers(Middleware):
    """Runs the Redis broker's idle watch while a worker runs; a stopping worker's idle consumers
    stop waiting (each is woken, and from then on waits only the idle timeout between fetches), so
    they notice the stop at once."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = False
            broker.idle_watch.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = True
            broker.end_idle_waits(sum(not _is_delay_queue(queue_name) for queue_name in worker.consumers))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.idle_watch.stop()
            broker.forget_idle_waits()


class _CheckedRedisConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, fetching ids with the data: bytes that are no message of ours are
    taken off the queue and recorded (``Intake``), and a message is acknowledged by the id it
    really has in Redis, whatever its bytes claim. An idle one waits for a wake-up (a work queue)
    or a nudge (a delay queue) rather than polling."""

    broker: _RedisBroker

    def __init__(self, broker: _RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)
        self.delayed = _is_delay_queue(queue_name)
        #: The last fetch found the queue empty (and dropped its wake tokens): wait for one first.
        self.drained = False

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if not self.message_cache:
                    self.message_cache = self._fetch()
                    if not self.message_cache:
                        return None
                redis_id, data = self.message_cache.pop(0)
                self.misses = 0
                message = self._checked(redis_id, data)
                if message is not None:
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
        except redis.exceptions.ConnectionError as error:
            raise ConnectionClosed(error) from None

    def _fetch(self) -> list[tuple[str, bytes]]:
        """What to hand out next: fetched at once, or after a wait (nothing to fetch, or no room)."""
        room = self.prefetch - self.outstanding_message_count
        if room <= 0:  # every worker thread has work: soon one is done
            self._back_off(self.timeout)
            return []
        if self.drained and not self.delayed and not self.broker.stopping:
            fetched = self.broker.wait_and_fetch(self.queue_name, room, self._idle_wait_ms())
        else:
            fetched = self.broker.fetch_with_ids(self.queue_name, room)
            if not fetched and self.delayed:
                self._wait_for_nudge()
            elif not fetched and self.broker.stopping:
                # A stopping worker's consumers poll for the idle timeout instead of blocking: the
                # embedded broker (fakeredis) rounds a BLPOP's timeout up to whole seconds, and
                # each consumer would wait one out before it noticed the stop.
                self._back_off(self.timeout)
        self.drained = len(fetched) < room
        return fetched

    def _idle_wait_ms(self) -> int:
        return max(self.timeout, self.broker.longest_wait_ms)

    def _wait_for_nudge(self) -> None:
        """A delay queue is empty: wait for the idle watch's nudge, or poll while this consumer
        holds delayed messages (its thread hands them to their queue between polls)."""
        if self.outstanding_message_count or self.broker.stopping:
            self._back_off(self.timeout if self.broker.stopping else max(self.timeout, DELAY_QUEUE_POLL_MS))
        else:
            self.broker.idle_watch.wait_for_nudge(self.queue_name, self._idle_wait_ms())

    def _back_off(self, max_backoff_ms: int) -> None:
        """dramatiq's wait between polls: growing with each empty one, up to ``max_backoff_ms``.
        A delay queue's consumer waits on its nudge, which a stopping worker sets."""
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=max_backoff_ms)
        if self.delayed:
            self.broker.idle_watch.wait_for_nudge(self.queue_name, backoff_ms)
        else:
            time.sleep(backoff_ms / 1000)

    def _checked(self, redis_id: str, data: bytes) -> dramatiq.Message[Any] | None:
        intake = self.broker.intake
        try:
            if not data:
                raise Malformed(f"message data missing from the queue (Redis id {redis_id[:40]!r})")
            message = intake.check(data, self.queue_name)
        except Malformed as error:
            if intake.refuse(data, self.queue_name, error):
                self.broker.do_ack(self.queue_name, redis_id)
            else:
                self.broker.do_nack(self.queue_name, redis_id)
            return None
        message.options["redis_message_id"] = redis_id
        return message

    def requeue_prefetched(self) -> int:
        """Put back what was fetched and not handed out (a stopping consumer); how many."""
        ids = [redis_id for redis_id, _ in self.message_cache]
        self.message_cache = []
        if ids:
            self.broker.do_requeue(self.queue_name, *ids)
        return len(ids)


class _RabbitmqBroker(RabbitmqBroker):
    """dramatiq's RabbitMQ broker, whose consumers check what they receive (``shared.intake``)."""

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.intake = Intake(self, max_message_bytes)
        #: Set while a worker of this broker shuts down (``WakeOnShutdown``): idle waits shorten.
        self.stopping = False

    @property
    def consumer_class(self) -> type[_RabbitmqConsumer]:
        return _CheckedRabbitmqConsumer


class _CheckedRabbitmqConsumer(_RabbitmqConsumer):
    """Bytes that are no message of ours are acknowledged off the queue and recorded (dramatiq would
    dead-letter them with no reason); kept in the broker's dead-letter queue if the record fails."""

    broker: _RabbitmqBroker

    def __next__(self) -> Any:
        try:
            method, _properties, body = next(self.iterator)
            if method is None:
                return None
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as error:
            if getattr(error, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(error) from None
        intake = self.broker.intake
        try:
            message = intake.check(body, self.queue_name)
        except Malformed as error:
            if intake.refuse(body, self.queue_name, error):
                self.connection.add_callback_threadsafe(partial(self.channel.basic_ack, method.delivery_tag))
            else:
                self._nack(method.delivery_tag)
            return None
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _pairs(flat: list[bytes]) -> list[tuple[str, bytes]]:
    """A fetch script's flat reply (id, data, id, data...) as (id, data) pairs."""
    return [(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


def standard_middleware(settings: Settings) -> list[Middleware]:
    """dramatiq's defaults, with our retry policy, plus access to the current message.

    Not Callbacks nor Pipelines: nothing here uses them, and they act on options a message carries.
    """
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Retries(
            max_retries=settings.max_retries,
            min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms,
        ),
        CurrentMessage(),
    ]


def make_broker(settings: Settings) -> dramatiq.Broker:
    """A broker for ``settings.broker_url``; nothing connects until the broker is used."""
    middleware = standard_middleware(settings)
    url = settings.broker_url
    if url.startswith(("amqp://", "amqps://")):
        # Publisher confirms: enqueue returns only once RabbitMQ has the message.
        return _RabbitmqBroker(
            url=url, middleware=middleware, confirm_delivery=True, max_message_bytes=settings.max_message_bytes
        )
    # Redis only: what a stopping consumer prefetched would otherwise wait out the heartbeat timeout.
    middleware.extend([RequeuePrefetched(), IdleConsumers()])
    redis_options = {
        "middleware": middleware,
        "heartbeat_timeout": settings.heartbeat_timeout_ms,
        "maintenance_chance": settings.redis_maintenance_chance,
        "dead_message_ttl": settings.dead_letter_ttl_days * DAY_MS,
        "max_message_bytes": settings.max_message_bytes,
    }
    if settings.embedded_broker:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return _RedisBroker(client=client, **redis_options)
    return _RedisBroker(url=url, **redis_options)
