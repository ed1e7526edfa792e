"""The broker factory: Redis, RabbitMQ, or the embedded in-process Redis, from one URL."""

from __future__ import annotations

import dramatiq
import fakeredis
import pika.exceptions
import redis.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

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


class _RedisBroker(RedisBroker):
    """dramatiq's Redis broker, polling its idle delay queues less often than its work queues."""

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name.endswith(".DQ"):  # dramatiq.common.dq_name
            timeout = max(timeout, DELAY_QUEUE_POLL_MS)
        return super().consume(queue_name, prefetch, timeout)


def standard_middleware(settings: Settings) -> list[Middleware]:
    """dramatiq's defaults, with our retry policy, plus access to the current message."""
    return [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
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
        return RabbitmqBroker(url=url, middleware=middleware, confirm_delivery=True)
    # Redis only: what a stopping consumer prefetched would otherwise wait out the heartbeat timeout.
    middleware.append(RequeuePrefetched())
    redis_options = {
        "middleware": middleware,
        "heartbeat_timeout": settings.heartbeat_timeout_ms,
        "maintenance_chance": settings.redis_maintenance_chance,
        "dead_message_ttl": settings.dead_letter_ttl_days * DAY_MS,
    }
    if settings.embedded_broker:
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        return _RedisBroker(client=client, **redis_options)
    return _RedisBroker(url=url, **redis_options)
