"""The thin actor in front of every queue: authenticate, decode, upcast, validate, authorize, then
run the handler in a unit of work.

The signature is checked before the envelope is parsed, and the sender's right to send that
contract to this queue once it is (``shared.signatures``). Everything a handler needs arrives as
arguments; it never sees the broker. Permanent errors (see ``shared.errors``), refusals included,
dead-letter at once; anything else is retried by dramatiq with backoff.

One kind of failure is not the message's: its side's database unreachable (a restart, a failover,
its connections killed; ``shared.database_outage``). The thread then holds the message, waits for
the database (up to ``outage_wait`` seconds) and applies it again from the start, so an outage
uses up none of its retries and dead-letters nothing; while the threads wait, the worker takes no
new messages. Applying again is safe: the failed unit of work rolled back, and one that did commit
before the connection dropped is found in the inbox (its outgoing parts are then relayed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from contracts.envelope import Side
from contracts.queues import Queue
from contracts.registry import ContractRegistry, Decoded, MessagePart
from shared.broker_outage import is_broker_unavailable
from shared.database_outage import is_database_unavailable
from shared.errors import DatabaseUnavailable, PartsFailed, PermanentError, Refused, WrongQueue
from shared.logging import bind_message_context, get_logger
from shared.metrics import Metrics
from shared.outbox import Outbox
from shared.outbox_marks import Outgoing
from shared.side_database import SideDatabase
from shared.signatures import Verifier
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

Handler = Callable[[Decoded[Any], UnitOfWork], None]
"""A handler applies one decoded message inside a unit of work; it raises to refuse it."""

FaultHook = Callable[[Decoded[Any]], None]


@dataclass
class Endpoint:
    """What one side does with the messages of one queue: a handler per contract."""

    queue: Queue
    handlers: Mapping[str, Handler]


@dataclass
class Consumer:
    """Applies messages of one endpoint; the dramatiq actor is a one-line call to :meth:`receive`."""

    endpoint: Endpoint
    side: Side
    registry: ContractRegistry
    database: SideDatabase
    relay: Outbox
    verifier: Verifier
    metrics: Metrics | None = None
    #: Test seam: called after the commit and before the relay, to simulate a crash there.
    after_commit: FaultHook | None = field(default=None)
    #: How long a message waits for its database when it finds it unreachable, before the failure
    #: counts as one of its retries (``DUALWRITE_DATABASE_OUTAGE_WAIT_SECONDS``).
    outage_wait: float = 300.0

    def receive(self, body: str) -> None:
        """Apply one message; while its database is unreachable, wait for it and apply it again."""
        availability = self.database.availability
        deadline = time.monotonic() + self.outage_wait
        while True:
            try:
                with self.relay.applying():
                    self._received(body)
            except PermanentError:
                raise
            except Exception as error:
                if not is_database_unavailable(error):
                    raise
                availability.failed(error)
                if availability.wait(deadline - time.monotonic()):
                    continue  # it answers again: the message from the start
                if availability.released:
                    raise _given_back(self.side.value) from error
                raise DatabaseUnavailable(
                    f"the {self.side.value} database did not answer within {self.outage_wait:g} s "
                    f"(DUALWRITE_DATABASE_OUTAGE_WAIT_SECONDS): {availability.last_error}"
                ) from error
            availability.answered()
            return

    def _received(self, body: str) -> None:
        current = CurrentMessage.get_current_message()
        message_id = current.message_id if current else None
        with bind_message_context(message_id=message_id, queue=self.endpoint.queue.name):
            # Who signed it, before a byte of it is parsed; then what it may do, once decoded.
            sender = self.verifier.authenticate(self.endpoint.queue.name, body, current.options if current else {})
            message = self.registry.decode(body)
            with bind_message_context(
                correlation_id=message.envelope.correlation_id,
                contract=message.envelope.contract,
                legal_entity=message.envelope.legal_entity,
                sender=sender.sender,
                **({"parts": len(message.parts)} if len(message.parts) > 1 else {}),
            ):
                self.verifier.authorize(sender, self.endpoint.queue.name, message.envelope)
                self._receive(message, _enqueued_at(current))

    def _receive(self, message: Decoded[Any], enqueued_at: datetime | None) -> None:
        try:
            outgoing = self._apply(message, enqueued_at)
        except PermanentError as error:
            if len(message.parts) == 1 or isinstance(error, Refused):
                raise
            # One document's rows must not hold the others back: each part on its own, and the
            # message dead-letters naming the parts that failed (a replay applies only those).
            outgoing = self._apply_parts_one_by_one(message, enqueued_at, error)
        try:
            if outgoing is not None:
                self._count_applied(message, outgoing)
            if self.after_commit is not None:
                self.after_commit(message)
        except BaseException:
            # Not sent from memory after all: the retried delivery relays it from the outbox.
            self.database.sent_marks.not_sending(m.message_id for m in outgoing or ())
            raise
        try:
            if outgoing is None:
                # A redelivery also sends what an earlier, crashed delivery of this message
                # committed and did not send.
                causes = {part.message_id for part in message.parts} | {str(message.envelope.message_id)}
                self.relay.relay(caused_by=sorted(causes))
            elif outgoing:
                self.relay.send_committed(outgoing)
        except Exception as error:
            if not is_broker_unavailable(error) or is_database_unavailable(error):
                raise
            # The message is applied and what it emits is in the outbox, unsent: the sweeper sends
            # it once the broker answers (the outage is logged once, shared.broker_outage). Failing
            # the message would only ask the unreachable broker for a retry.
            log.debug("outgoing messages left to the outbox sweeper: the broker is unreachable", error=str(error))

    def _apply(self, message: Decoded[Any], enqueued_at: datetime | None) -> list[Outgoing] | None:
        """Apply the message's new parts once; what they wrote to the outbox, or None when every
        part was applied before."""
        handler = self.endpoint.handlers.get(message.envelope.contract)
        if handler is None:
            raise WrongQueue(
                f"queue {self.endpoint.queue.name!r} does not take contract {message.envelope.contract!r}"
            )
        with UnitOfWork(self.database, self.side, cause=message.envelope, relay_after_commit=True) as uow:
            new = uow.claim(message, self.endpoint.queue, enqueued_at)
            if new is None:
                log.info("duplicate message ignored")
                if self.metrics is not None:
                    self.metrics.duplicate_ignored(self.endpoint.queue, message.envelope.contract)
                return None
            handler(new, uow)
            uow.commit()
        return uow.outgoing

    def _apply_parts_one_by_one(
        self, message: Decoded[Any], enqueued_at: datetime | None, error: PermanentError
    ) -> list[Outgoing]:
        """Each part in a unit of work of its own, each sent on as it commits; nothing left to send."""
        failed: list[tuple[MessagePart, PermanentError]] = []
        for part in message.parts:
            try:
                committed = self._apply(message.only([part]), enqueued_at)
            except PermanentError as part_error:
                failed.append((part, part_error))
                continue
            if committed:
                self.relay.send_committed(committed)
        if not failed:
            # Every part applied on its own (the batch's error came from their combination).
            log.warning("batch applied part by part", error=str(error))
            return []
        if len(failed) == len(message.parts):
            raise error  # nothing applied: the message failed as a whole, for the reason it gave
        raise PartsFailed(failed, len(message.parts))

    def _count_applied(self, message: Decoded[Any], outgoing: list[Outgoing]) -> None:
        rows = len(message.payload.rows)
        log.info("message applied", rows=rows, emitted=len(outgoing))
        if self.metrics is not None:
            self.metrics.applied(self.endpoint.queue, message.envelope.contract, rows)


#: When a stopping worker gives back a message it held for an outage, the next worker takes it after this.
GIVEN_BACK_DELAY_MS = 1_000


def _given_back(side: str) -> dramatiq.Retry:
    """What a thread that waited for its database raises when its worker stops meanwhile: the message
    goes back to the broker (dramatiq's Retries enqueues it again) without counting a retry, so a
    worker restarted again and again during an outage never uses up its messages' retries.

    Retries adds one to the message's ``retries`` option for any failure: one is taken off first.
    ``Retry`` is the failure dramatiq neither logs as an error nor dead-letters for itself.
    """
    current = CurrentMessage.get_current_message()
    if current is not None:
        current.options["retries"] = current.options.get("retries", 0) - 1
    return dramatiq.Retry(
        f"the worker stops while the {side} database is unreachable: the message goes back to the broker",
        delay=GIVEN_BACK_DELAY_MS,
    )


def _enqueued_at(current: dramatiq.Message[Any] | None) -> datetime | None:
    if current is None:
        return None
    return datetime.fromtimestamp(current.message_timestamp / 1000, UTC)


def declare_actor(broker: dramatiq.Broker, consumer: Consumer) -> dramatiq.Actor[Any, Any]:
    """Register the consumer's actor on its queue; permanent errors are not retried."""
    queue = consumer.endpoint.queue
    return dramatiq.Actor(
        consumer.receive,
        broker=broker,
        actor_name=queue.actor_name,
        queue_name=queue.name,
        priority=0,
        options={"throws": (PermanentError,)},
    )
