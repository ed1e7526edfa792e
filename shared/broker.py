"""The broker factory: Redis, RabbitMQ, or the embedded in-process Redis, from one URL."""

from __future__ import annotations

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
from shared.middleware.requeue_prefetched import RequeuePrefetched
from shared.settings import Settings

DAY_MS = 86_400_000

#: What a publisher sees when the broker cannot be reached.
BROKER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    dramatiq.errors.BrokerConnectionError,
    redis.exceptions.ConnectionError,
    pika.exceptions.AMQPConnectionError,
    ConnectionError,
)


#: How long an idle Redis delay-queue consumer sleeps between polls at most. Delay queues hold only
#: retries waiting out their backoff, so a slower poll costs a retry at most this much more wait;
#: every worker polls one per queue, and at the workers' 100 ms idle timeout their polling was
#: half of what idle workers spent.
DELAY_QUEUE_POLL_MS = 1_000


#: An enqueue wakes at most this many idle consumers of its queue (one per worker process at
#: most is needed: the one woken fetches up to its prefetch).
WAKE_DEPTH = 8

#: How long an idle Redis work-queue consumer waits for a wake-up before it fetches anyway (what
#: another language's publisher, which does not wake, waits at most). Every idle consumer makes a
#: round trip this often; its fetch also refreshes the worker's heartbeat, so this stays well under
#: the shortest heartbeat timeout in use (2 s). A stopping worker goes back to the idle timeout.
IDLE_WAIT_MS = 500


def wake_key(namespace: str, queue_name: str) -> str:
    """The list an idle consumer of ``queue_name`` blocks on (``BLPOP``) until an enqueue pushes to it."""
    return f"{namespace}:{queue_name}.wake"


class _RedisBroker(RedisBroker):
    """dramatiq's Redis broker, whose consumers check what they fetch (``shared.intake``), wait for
    new messages instead of polling for them, and poll idle delay queues less often.

    dramatiq's own consumer sleeps between empty fetches, backing off up to the worker's idle
    timeout: a message enqueued meanwhile waits out the sleep, which at light load added up to
    most of a document's latency over its nine hops. Here every enqueue also pushes a token to
    the queue's wake list (``wake_key``, at most ``WAKE_DEPTH`` tokens), and an idle consumer
    blocks on that list for up to its idle timeout: it fetches within a round trip of the enqueue.
    A publisher that does not push (another language's client) is still served, at the idle
    timeout's pace.
    """

    def __init__(self, *, max_message_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.intake = Intake(self, max_message_bytes)
        #: Set while a worker of this broker shuts down (``WakeOnShutdown``): idle waits shorten.
        self.stopping = False
        self._fetch_with_ids = self.client.register_script(
            resources.files("shared").joinpath("redis_fetch.lua").read_bytes()
        )

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name.endswith(".DQ"):  # dramatiq.common.dq_name
            timeout = max(timeout, DELAY_QUEUE_POLL_MS)
        return _CheckedRedisConsumer(self, queue_name, prefetch, timeout)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        enqueued = super().enqueue(message, delay=delay)
        if delay is None:
            self.wake(message.queue_name)
        return enqueued

    def wake(self, queue_name: str) -> None:
        """Wake an idle consumer of the queue (what ``enqueue`` does after each message)."""
        key = wake_key(self.namespace, queue_name)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, 1)
            pipe.ltrim(key, 0, WAKE_DEPTH - 1)
            pipe.execute()

    def wait_for_wake(self, queue_name: str, timeout_ms: int) -> None:
        """Block until an enqueue wakes this queue's consumers, or ``timeout_ms`` passes."""
        self.client.blpop([wake_key(self.namespace, queue_name)], timeout=timeout_ms / 1000)

    def fetch_with_ids(self, queue_name: str, count: int) -> list[tuple[str, bytes]]:
        """Up to ``count`` messages moved to this worker's acks, each as (hash field id, data).

        As often as dramatiq's own fetch would (``maintenance_chance``), its dispatch script first
        runs the maintenance pass on this queue: a dead worker's fetched messages go back on the
        queue (after ``heartbeat_timeout``) and expired dead letters are dropped. A fetch of none
        (prefetch 0) does nothing else.
        """
        if self._should_do_maintenance("fetch"):
            self.scripts["dispatch"](
                keys=[self.namespace],
                args=[
                    "fetch", current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                    self.dead_message_ttl, 1, self._max_unpack_size(), 0,
                ],
            )
        flat = self._fetch_with_ids(
            keys=[self.namespace], args=[queue_name, self.broker_id, current_millis(), count]
        )
        return [(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]


class WakeOnShutdown(Middleware):
    """A stopping worker's idle consumers stop waiting for wake-ups: each queue is woken, and from
    then on they wait only the idle timeout between fetches, so they notice the stop at once."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = False

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if isinstance(broker, _RedisBroker):
            broker.stopping = True
            for queue_name in worker.consumers:
                if not queue_name.endswith(".DQ"):  # delay queues are polled, never woken
                    broker.wake(queue_name)


class _CheckedRedisConsumer(_RedisConsumer):
    """dramatiq's Redis consumer, fetching ids with the data: bytes that are no message of ours are
    taken off the queue and recorded (``Intake``), and a message is acknowledged by the id it
    really has in Redis, whatever its bytes claim."""

    broker: _RedisBroker

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if not self.message_cache:
                    if self.outstanding_message_count < self.prefetch:
                        self.message_cache = self.broker.fetch_with_ids(
                            self.queue_name, self.prefetch - self.outstanding_message_count
                        )
                    if not self.message_cache:
                        self._idle()
                        return None
                redis_id, data = self.message_cache.pop(0)
                self.misses = 0
                message = self._checked(redis_id, data)
                if message is not None:
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
        except redis.exceptions.ConnectionError as error:
            raise ConnectionClosed(error) from None

    def _idle(self) -> None:
        """Nothing came: wait for the next enqueue (a delay queue's retries are only polled)."""
        if self.queue_name.endswith(".DQ") or self.outstanding_message_count >= self.prefetch:
            self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
            time.sleep(backoff_ms / 1000)
            return
        self.broker.wait_for_wake(self.queue_name, self.timeout if self.broker.stopping else max(self.timeout, IDLE_WAIT_MS))

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
    middleware.extend([RequeuePrefetched(), WakeOnShutdown()])
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
