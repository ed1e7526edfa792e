"""The broker going away for a while (a restart, a network cut, a frozen server) is an outage the
workers ride out by themselves, logged once when it starts and once when it ends.

**What happens meanwhile.** dramatiq's consumer threads meet the outage at their next fetch and
start their consumer again every few seconds until the broker answers (Redis: the client's 5 s
socket timeout ends any wait on a frozen server; RabbitMQ: a new connection). A message whose
handler committed cannot be acknowledged: dramatiq retries the acknowledgement until it goes
through (Redis), or RabbitMQ delivers the message again once the connection that held it is gone,
and the inbox recognises it. What a committed unit of work emits cannot be sent: its rows stay
unsent in the outbox (``shared.outbox``), the message is done, and the outbox sweeper sends them
once the broker answers. A message that failed meanwhile keeps its retry: its enqueue is tried
again until the broker takes it, before the message is acknowledged (``shared.broker._Retries``).
On Redis, a consumer starting again puts back on the queue what this process fetched and lost
track of (``_RedisBroker.requeue_unheld``). No worker process exits, no thread ends.

**What is logged.** :class:`BrokerAvailability`, one per broker object (so one per worker
process), is what its threads know of the broker: up, or down since when and why. The first
failure logs ``broker unreachable`` with the error, the first success after it ``broker reachable
again`` with how long it was down; the failures in between are counted, not logged.
:class:`QuietBrokerErrors` drops dramatiq's and pika's own lines about the same outage (a line per
consumer thread every few seconds, one per message whose acknowledgement is retried, a dozen per
AMQP connection lost), which would otherwise bury those two (installed by ``quiet_broker_errors``
as a worker starts). A one-shot command logs nothing of this: it reports the error and exits 4.
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq.errors
import pika.exceptions
import redis.exceptions

from shared.logging import get_logger
from shared.redaction import redact_text

log = get_logger(__name__)

#: What a publisher, a consumer or an operator's command sees when the broker cannot be reached:
#: refused, reset or closed connections, and (Redis) a server that did not answer within the
#: client's socket timeout.
BROKER_UNAVAILABLE: tuple[type[BaseException], ...] = (
    dramatiq.errors.BrokerConnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pika.exceptions.AMQPConnectionError,
    ConnectionError,
)

#: The templates of dramatiq's log lines that only say "the broker is unreachable": dropped by
#: :class:`QuietBrokerErrors`, the outage being logged once by :class:`BrokerAvailability`.
DRAMATIQ_CONNECTION_LINES = (
    "Consumer encountered a connection error",
    "Failed to post_process_message(%s) due to a connection error",
    "Retrying enqueue due to closed connection",
)

#: dramatiq's lines that carry the error as their traceback: dropped when it is the broker's absence.
DRAMATIQ_ERROR_LINES = (
    "Consumer encountered an unexpected error",
    "Unexpected failure in after_%s of %r",
    "Failed to process message %s with unhandled exception",
    "Unhandled error during post_process_message",
)

#: Said after each consumer error, whatever it was: dropped while the broker is known to be down.
DRAMATIQ_RESTART_LINE = "Restarting consumer in"

#: pika's transport loggers: a dozen lines for each connection lost or refused (each consumer
#: thread has its own), every one of them about the connection. What they report reaches our code
#: as an exception too, which the outage's line carries.
PIKA_TRANSPORT_LOGGERS = "pika.adapters"


def is_broker_unavailable(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) means the broker could not be reached."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, BROKER_UNAVAILABLE):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


def describe(error: BaseException | str) -> str:
    """The error on one line, passwords hidden: what the outage's log line says."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return redact_text(" ".join(text.split()))[:300]


class BrokerAvailability:
    """Whether the broker answers, as the threads of this process last found it.

    Called by whatever talks to the broker: :meth:`failed` when it could not, :meth:`answered`
    when it could. Cheap when nothing changes (an attribute read), so it is called on every fetch,
    acknowledgement and send.
    """

    def __init__(self, broker: str, *, log_outages: bool = True) -> None:
        #: "redis" or "rabbitmq": named in the log lines.
        self.broker = broker
        #: Whether outages are logged: in a worker (``quiet_broker_errors``), not in a one-shot
        #: command, which reports the error itself and exits.
        self.log_outages = log_outages
        self._lock = threading.Lock()
        #: When this process found the broker unreachable (monotonic), None while it answers.
        self.down_since: float | None = None
        self.last_error: str | None = None
        #: Operations that failed during the current outage (logged when it ends).
        self.failures = 0
        #: Outages seen by this process (each logged once).
        self.outages = 0
        #: When the last outage ended (monotonic), None if there was none.
        self.back_since: float | None = None

    @property
    def up(self) -> bool:
        return self.down_since is None

    def back_for(self, seconds: float) -> bool:
        """Whether the broker has answered for at least ``seconds`` (always, if it never failed)."""
        if self.down_since is not None:
            return False
        return self.back_since is None or time.monotonic() - self.back_since >= seconds

    def failed(self, error: BaseException | str, *, operation: str | None = None) -> None:
        """An operation could not reach the broker: the outage starts (logged once) if it had not."""
        with self._lock:
            self.failures += 1
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
            self.outages += 1
            self.last_error = describe(error)
        if not self.log_outages:
            return
        log.warning(
            "broker unreachable",
            broker=self.broker,
            operation=operation,
            error=self.last_error,
            meanwhile="consumers retry every few seconds; the outbox keeps what cannot be sent and sends it once the broker answers",
        )

    def answered(self) -> None:
        """An operation reached the broker: the outage, if any, is over (logged once)."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            self.back_since = time.monotonic()
            seconds = self.back_since - self.down_since
            failures, self.failures = self.failures, 0
            self.down_since = None
        if not self.log_outages:
            return
        log.warning("broker reachable again", broker=self.broker, down_seconds=round(seconds, 1), failed_operations=failures)


def quiet_broker_errors(availability: BrokerAvailability) -> None:
    """From now on, the process's log handlers leave out dramatiq's and pika's lines about an
    unreachable broker, and ``availability`` (the broker of the worker starting) logs the outage.

    Called as a worker starts (``shared.broker.BrokerOutages``); the filter stays for the life of
    the process, so the lines a stopping worker's last closes would log are left out too.
    """
    availability.log_outages = True
    QuietBrokerErrors.availability = availability
    for handler in logging.getLogger().handlers:
        if not any(isinstance(each, QuietBrokerErrors) for each in handler.filters):
            handler.addFilter(QuietBrokerErrors())


class QuietBrokerErrors(logging.Filter):
    """Drops dramatiq's and pika's lines about an unreachable broker: ``availability``, the broker
    of the worker that runs in this process, logs the outage once. A dropped line that reports a
    failure counts as one for it, so the outage is logged even when only dramatiq met it.
    """

    #: The broker of the worker running in this process (``quiet_broker_errors``).
    availability: BrokerAvailability = BrokerAvailability("broker")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(PIKA_TRANSPORT_LOGGERS):
            return record.levelno < logging.WARNING
        if not record.name.startswith("dramatiq"):
            return True
        template = str(record.msg)
        if template.startswith(DRAMATIQ_CONNECTION_LINES):
            self.availability.failed(_record_text(record), operation=_operation(record))
            return False
        if template.startswith(DRAMATIQ_ERROR_LINES) and record.exc_info and is_broker_unavailable(record.exc_info[1]):
            self.availability.failed(record.exc_info[1], operation=_operation(record))  # type: ignore[arg-type]
            return False
        if template.startswith(DRAMATIQ_RESTART_LINE) and not self.availability.up:
            return False
        return True


def _record_text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage().splitlines()[0]
    except Exception:  # noqa: BLE001 - a line we drop must never break logging
        return str(record.msg)


def _operation(record: logging.LogRecord) -> str:
    """Which dramatiq part met the outage, from its logger's name (``dramatiq.worker.ConsumerThread(queue)``)."""
    return record.name.removeprefix("dramatiq.")
