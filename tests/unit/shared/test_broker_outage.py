"""A broker outage: which errors are one, how often it is logged, and what the workers' broker code
does meanwhile (shared.broker_outage, shared.broker). No server needed: the embedded broker, and
stand-ins for a broker that refuses."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import pika.exceptions
import pytest
import redis.exceptions
import structlog.testing
from dramatiq.errors import ConnectionClosed

import shared.broker
from shared.broker import _EnqueueUntilSent, make_broker
from shared.broker_outage import BrokerAvailability, QuietBrokerErrors, is_broker_unavailable
from shared.periodic import PeriodicTask
from shared.publisher import Publisher, dramatiq_message
from shared.settings import Settings

MESSAGE_ID = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
        pika.exceptions.AMQPConnectionError("refused"),
        pika.exceptions.StreamLostError("Stream connection lost"),
        ConnectionClosed(ConnectionResetError(104, "reset")),
        ConnectionRefusedError(111, "refused"),
    ],
    ids=["redis refused", "redis timeout", "amqp refused", "amqp lost", "dramatiq", "socket"],
)
def test_an_unreachable_broker_is_an_outage(error: BaseException) -> None:
    assert is_broker_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [redis.exceptions.ResponseError("NOSCRIPT"), pika.exceptions.UnroutableError([]), ValueError("bad"), RuntimeError("a bug")],
    ids=["redis error reply", "unroutable", "value", "bug"],
)
def test_other_errors_are_not(error: BaseException) -> None:
    assert not is_broker_unavailable(error)


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    availability = BrokerAvailability("redis")
    with structlog.testing.capture_logs() as logged:
        availability.answered()  # up: nothing to say
        for _ in range(50):  # every consumer thread, every few seconds
            availability.failed(redis.exceptions.ConnectionError("Connection refused"), operation="fetch from q")
        assert not availability.up
        for _ in range(5):
            availability.answered()
    events = [(entry["event"], entry.get("failed_operations")) for entry in logged]
    assert events == [("broker unreachable", None), ("broker reachable again", 50)]
    assert availability.up and availability.outages == 1


def record(name: str, message: str, level: int = logging.CRITICAL, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord(name, level, __file__, 1, message, (), exc_info)


def test_dramatiq_and_pika_lines_about_the_outage_are_left_out_and_count_as_failures() -> None:
    availability = BrokerAvailability("rabbitmq")
    QuietBrokerErrors.availability = availability
    quiet = QuietBrokerErrors()
    consumer = "dramatiq.worker.ConsumerThread(q)"
    with structlog.testing.capture_logs() as logged:
        assert not quiet.filter(record(consumer, "Consumer encountered a connection error: refused"))
        assert not quiet.filter(record(consumer, "Restarting consumer in 3.00 seconds.", logging.INFO))
        assert not quiet.filter(record("pika.adapters.blocking_connection", "Unexpected connection close detected", logging.ERROR))
        assert not quiet.filter(
            record("dramatiq.broker", "Unexpected failure in after_%s of %r.", exc=redis.exceptions.TimeoutError("timeout"))
        )
        # What is not about the broker's absence stays
        assert quiet.filter(record("dramatiq.worker.WorkerThread", "Failed to process message %s with unhandled exception.", exc=ValueError("x")))
        assert quiet.filter(record("shared.consumer", "message applied", logging.INFO))
        availability.answered()
        assert quiet.filter(record(consumer, "Restarting consumer in 3.00 seconds.", logging.INFO))  # up again: kept
    assert [entry["event"] for entry in logged] == ["broker unreachable", "broker reachable again"]


def embedded_broker() -> Any:
    broker = make_broker(Settings())
    broker.availability.log_outages = True  # as in a worker (quiet_broker_errors)
    dramatiq.Actor(lambda body: None, broker=broker, actor_name="a", queue_name="q", priority=0, options={})
    return broker


def test_a_fetched_message_no_thread_received_is_put_back_when_a_consumer_starts() -> None:
    # Given a fetch whose reply was lost (Redis ran it, the connection was gone): the message sits in
    # this live worker's acks set, and no thread of it holds the message
    broker = embedded_broker()
    broker.enqueue(dramatiq_message("q", "a", MESSAGE_ID, "{}"))
    assert len(broker.fetch_with_ids("q", 1)) == 1
    assert broker.client.llen("dramatiq:q") == 0

    # When a consumer of the queue starts (after the connection error, the consumer thread starts a new one)
    with structlog.testing.capture_logs() as logged:
        message = next(broker.consume("q", prefetch=1, timeout=100))

    # Then the message is back on the queue and delivered, once
    assert message is not None and message.message_id == MESSAGE_ID
    assert [entry["event"] for entry in logged] == ["fetched messages no thread received put back on their queue"]
    assert broker.client.scard(f"dramatiq:__acks__.{broker.broker_id}.q") == 1  # fetched again, by the new consumer


def test_what_a_thread_still_holds_is_not_put_back() -> None:
    # Given a message handed out to a worker thread, which has not acknowledged it yet
    broker = embedded_broker()
    broker.enqueue(dramatiq_message("q", "a", MESSAGE_ID, "{}"))
    first = broker.consume("q", prefetch=1, timeout=100)
    held = next(first)
    assert held is not None

    # When the consumer thread starts a new consumer (a connection error) and it looks for lost messages
    first.close()
    second = broker.consume("q", prefetch=1, timeout=100)
    assert broker.requeue_unheld("q") == 0

    # Then the held message is still the worker thread's, acknowledged through the new consumer
    second.ack(held)
    assert broker.client.scard(f"dramatiq:__acks__.{broker.broker_id}.q") == 0
    assert broker.held("q") == frozenset()


def test_an_acknowledgement_that_times_out_is_retried_by_dramatiq() -> None:
    # dramatiq retries an acknowledgement that raised ConnectionClosed; on any other error it gave up,
    # leaving the message fetched for as long as the worker lives.
    broker = embedded_broker()
    broker.enqueue(dramatiq_message("q", "a", MESSAGE_ID, "{}"))
    consumer = broker.consume("q", prefetch=1, timeout=100)
    message = next(consumer)

    def frozen(*_: Any) -> None:
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    do_ack = broker.do_ack
    broker.do_ack = frozen
    with pytest.raises(ConnectionClosed), structlog.testing.capture_logs():
        consumer.ack(message)
    assert not broker.availability.up
    broker.do_ack = do_ack
    with structlog.testing.capture_logs() as logged:
        consumer.ack(message)
    assert broker.availability.up and [entry["event"] for entry in logged] == ["broker reachable again"]
    assert broker.client.scard(f"dramatiq:__acks__.{broker.broker_id}.q") == 0


class FlakyBroker:
    """A broker whose first ``failures`` enqueues find it unreachable."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.enqueued: list[Any] = []
        self.availability = BrokerAvailability("redis")

    def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
        if self.failures:
            self.failures -= 1
            raise redis.exceptions.ConnectionError("Connection refused")
        self.enqueued.append((message, delay))
        return message


def test_a_retry_is_enqueued_once_the_broker_answers_never_given_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared.broker.time, "sleep", lambda seconds: None)
    broker = FlakyBroker(failures=3)
    message = dramatiq_message("q", "a", MESSAGE_ID, "{}")
    with structlog.testing.capture_logs() as logged:
        _EnqueueUntilSent(broker).enqueue(message, delay=500)  # type: ignore[arg-type]
        broker.availability.answered()
    assert broker.enqueued == [(message, 500)]
    assert [entry["event"] for entry in logged] == ["broker unreachable", "broker reachable again"]


class _NoSigner:
    """Signs nothing: the signature is not what this test is about."""

    def options(self, body: str) -> dict[str, str]:
        return {}


def test_a_publisher_reports_the_outage_and_raises() -> None:
    broker = FlakyBroker(failures=1)
    publisher = Publisher(broker, _NoSigner())  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logged:
        with pytest.raises(redis.exceptions.ConnectionError):
            publisher.send_raw("q", "a", MESSAGE_ID, "{}")
        publisher.send_raw("q", "a", MESSAGE_ID, "{}")
    assert len(broker.enqueued) == 1
    assert [entry["event"] for entry in logged] == ["broker unreachable", "broker reachable again"]


def test_the_outbox_relay_meeting_a_broker_outage_logs_nothing_of_its_own() -> None:
    def sweep() -> None:
        raise ConnectionClosed(redis.exceptions.ConnectionError("Connection refused"))

    task = PeriodicTask("bridge-outbox-relay", 1.0, sweep)
    with structlog.testing.capture_logs() as logged:
        assert [task.run_once() for _ in range(3)] == [False, False, False]
    assert logged == []  # the publisher that met it logged the outage, once


def test_a_rabbitmq_acknowledgement_due_on_a_lost_connection_is_not_sent() -> None:
    # RabbitMQ delivers the message again once its connection is gone; the inbox recognises it.
    from types import SimpleNamespace

    from shared.broker import _CheckedRabbitmqConsumer

    consumer = object.__new__(_CheckedRabbitmqConsumer)
    consumer.queue_name = "q"
    consumer.known_tags = {7}
    consumer.connection = SimpleNamespace(is_open=False)  # the consumer thread has not replaced it yet
    message = SimpleNamespace(_tag=7, message_id=MESSAGE_ID)
    with structlog.testing.capture_logs() as logged:
        consumer.ack(message)  # no ConnectionClosed: dramatiq would retry it every 5 s, in vain
        consumer.connection = SimpleNamespace(is_open=True)
        consumer.known_tags = set()  # a new consumer: the tag is not its own
        consumer.nack(message)
    assert [entry["event"] for entry in logged] == [
        "acknowledgement not sent: the message came on a connection since lost, RabbitMQ delivers it again"
    ] * 2
