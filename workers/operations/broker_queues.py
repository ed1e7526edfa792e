"""What the operator tools ask of a broker: queue depths, and the dead-letter queues (``<queue>.XQ``).

Two implementations, one per broker: :mod:`workers.operations.redis_queues` reads dramatiq's Redis
keys, :mod:`workers.operations.rabbitmq_queues` uses kombu (passive declares for counts, the
``.XQ`` queues browsed and drained; the work queues are never consumed). Messages sent back to a
queue go through dramatiq's own broker, so a replayed message is exactly what a publisher sends.

The embedded broker lives inside the process that created it (``dualwrite demo``, a test): a
command cannot reach it from outside. In that process, wrap its broker with
:func:`broker_queues_for`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import amqp.exceptions
import dramatiq
import kombu.exceptions
import redis.exceptions
from dramatiq.brokers.redis import RedisBroker

from shared.broker import BROKER_UNAVAILABLE, make_broker
from shared.dead_letters import copy_digest, fit_message_id
from shared.errors import ConfigurationError
from shared.publisher import Publisher
from shared.signatures import Signer
from shared.settings import Settings
from shared.untrusted_json import parse_object


class EmbeddedBrokerOutOfReach(ConfigurationError):
    """Raised when an operator command is pointed at the embedded broker, which lives in another process."""


#: What an operator command sees when the broker is down, refuses the credentials or has no such vhost.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    *BROKER_UNAVAILABLE,
    redis.exceptions.RedisError,
    amqp.exceptions.AMQPError,
    kombu.exceptions.OperationalError,
    OSError,
)

EMBEDDED_OUT_OF_REACH = (
    "the embedded broker lives inside one process (dualwrite demo) and cannot be reached from here; "
    "set DUALWRITE_BROKER_URL to the redis:// or amqp:// URL the workers use"
)


@dataclass(frozen=True)
class InFlightHolder:
    """A worker process holding messages of a queue it fetched and has not acked (Redis).

    A dead one (its heartbeat older than the heartbeat timeout: SIGKILLed, crashed, its machine
    lost) holds them until a live worker's maintenance pass puts them back on the queue.
    """

    #: The id its heartbeat and acks go by (its ``worker started`` line logs it, with its pid).
    worker_id: str
    messages: int
    #: Seconds since its last heartbeat; None when it has none (maintenance never puts those back).
    heartbeat_age: float | None
    dead: bool
    #: A dead holder's messages are back on the queue within this many seconds, at the next
    #: maintenance pass of a live worker consuming the queue; None for a live one (or one without
    #: a heartbeat, which no pass finds).
    requeue_within: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "messages": self.messages,
            "heartbeat_age_seconds": self.heartbeat_age,
            "dead": self.dead,
            "requeue_within_seconds": self.requeue_within,
        }


@dataclass(frozen=True)
class QueueCounts:
    """One queue as the broker sees it; None where the broker cannot tell."""

    ready: int
    delayed: int | None
    in_flight: int | None
    dead: int
    #: RabbitMQ knows how many consumers a queue has; Redis does not.
    consumers: int | None
    #: When the oldest ready message was first enqueued (None: the queue is empty, or the broker cannot tell).
    oldest_ready_at: datetime | None
    #: Of ``in_flight``, the messages held by dead workers (Redis; None where the broker cannot tell).
    in_flight_dead: int | None = None
    #: Who holds the ``in_flight`` messages, most first (Redis).
    holders: tuple[InFlightHolder, ...] = ()


@dataclass(frozen=True)
class BrokerLetter:
    """A dead letter as the broker holds it: the dramatiq message, and when it died."""

    queue_name: str
    message: dict[str, Any]
    dead_at: datetime | None
    #: The broker's own handle on this copy (a Redis message id, an AMQP delivery tag).
    handle: Any = field(compare=False, repr=False)
    #: The copy's identity: the SHA-256 of its exact bytes (shared/dead_letters.py ``copy_digest``),
    #: which the side recorded with the letter's reason. Two copies with one message id differ in it.
    digest: str = ""

    @property
    def message_id(self) -> str:
        """The message's id as its dead-letter row holds it (shared/dead_letters.py ``fit_message_id``)."""
        message_id = self.message.get("message_id")
        return fit_message_id(message_id) if isinstance(message_id, str) else ""

    @property
    def body(self) -> str:
        """The envelope JSON (the dramatiq message's single argument)."""
        args = self.message.get("args")
        if isinstance(args, list) and len(args) == 1 and isinstance(args[0], str):
            return args[0]
        return json.dumps(args)


def broker_letter(queue_name: str, raw: bytes | str, dead_at: datetime | None, handle: Any) -> BrokerLetter:
    """A dead-letter copy read from the broker: its bytes parsed, and their digest as its identity."""
    return BrokerLetter(queue_name, parse_dramatiq_message(raw), dead_at, handle=handle, digest=copy_digest(raw))


def parse_dramatiq_message(raw: bytes | str) -> dict[str, Any]:
    """The dramatiq message the bytes hold, as a dict; never raises, whatever the bytes.

    Bytes that are not a JSON object (not JSON, not UTF-8, nested too deep) become a message whose
    single argument is their text and whose id is derived from them (as the intake derives one,
    shared/intake.py), so each is a letter of its own; a message without a string id gets one too.
    """
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    message = parse_object(data)
    if message is None:
        return {"message_id": derived_message_id(data), "args": [data.decode("utf-8", "backslashreplace")]}
    if not isinstance(message.get("message_id"), str) or not message["message_id"]:
        message = {**message, "message_id": derived_message_id(data)}
    return message


def derived_message_id(data: bytes) -> str:
    """An id for bytes that name none: the same bytes, the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, hashlib.sha256(data).hexdigest()))


class HeldDeadLetters(ABC):
    """The dead letters of one queue, taken for a repair: remove some, and the rest stay where they were.

    Only the copies taken here can be removed: a letter that dies again while the repair runs (its
    replay failed once more) is a new copy, and stays dead.
    """

    letters: list[BrokerLetter]

    @abstractmethod
    def remove(self, letters: Iterable[BrokerLetter]) -> int:
        """Take these copies off the dead-letter queue (and out of :attr:`letters`); how many were removed."""


class BrokerQueues(ABC):
    """Operator access to one broker's queues."""

    kind: str
    #: What "in flight" means on this broker, for people reading the numbers.
    in_flight_meaning: str

    def __init__(self, broker: dramatiq.Broker, *, owns_broker: bool = False) -> None:
        self.broker = broker
        self.owns_broker = owns_broker

    @abstractmethod
    def counts(self, queue_names: Sequence[str]) -> dict[str, QueueCounts]:
        """The depths of each named queue."""

    @abstractmethod
    def hold_dead_letters(self, queue_name: str) -> AbstractContextManager[HeldDeadLetters]:
        """The queue's dead letters, held until the block ends; those not removed are put back."""

    def dead_letters(self, queue_name: str) -> list[BrokerLetter]:
        with self.hold_dead_letters(queue_name) as held:
            return list(held.letters)

    def enqueue(
        self,
        queue_name: str,
        actor_name: str,
        message_id: str,
        body: str,
        *,
        signer: Signer,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Send an envelope to a work queue as a fresh dramatiq message (no retries counted yet), signed.

        ``options`` go in the dramatiq message's options (a replay is marked there, not in the envelope).
        """
        Publisher(self.broker, signer).send_raw(queue_name, actor_name, message_id, body, options=options)

    def close(self) -> None:
        """Let go of the connections opened here, and of the broker when it was opened for us."""
        if self.owns_broker:
            self.broker.close()


def broker_queues_for(broker: dramatiq.Broker, url: str | None = None, *, owns_broker: bool = False) -> BrokerQueues:
    """Operator access through a dramatiq broker this process already holds (the embedded one too).

    ``close()`` leaves that broker open unless ``owns_broker``.
    """
    from workers.operations.rabbitmq_queues import RabbitmqQueues
    from workers.operations.redis_queues import RedisQueues

    if isinstance(broker, RedisBroker):
        return RedisQueues(broker, owns_broker=owns_broker)
    if url is None:
        raise ValueError("RabbitMQ access needs the broker URL")
    return RabbitmqQueues(broker, url, owns_broker=owns_broker)


def open_broker_queues(settings: Settings) -> BrokerQueues:
    """Operator access to the broker the settings name; raises EmbeddedBrokerOutOfReach for embedded://."""
    if settings.embedded_broker:
        raise EmbeddedBrokerOutOfReach(EMBEDDED_OUT_OF_REACH)
    return broker_queues_for(make_broker(settings), settings.broker_url, owns_broker=True)


def iter_chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
