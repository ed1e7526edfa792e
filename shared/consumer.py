"""The thin actor in front of every queue: authenticate, decode, upcast, validate, authorize, then
run the handler in a unit of work.

The signature is checked before the envelope is parsed, and the sender's right to send that
contract to this queue once it is (``shared.signatures``). Everything a handler needs arrives as
arguments; it never sees the broker. Permanent errors (see ``shared.errors``), refusals included,
dead-letter at once; anything else is retried by dramatiq with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from contracts.batch import MAX_ROWS
from contracts.envelope import Side
from contracts.queues import Queue
from contracts.registry import ContractRegistry, Decoded, MessagePart
from shared.delivery_groups import ALONE, DeliveryGroups
from shared.errors import PartsFailed, PermanentError, Refused, WrongQueue
from shared.logging import bind_message_context, current_context, get_logger, logged_as
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


@dataclass(frozen=True)
class _Delivery:
    """A decoded, authorized message of this queue, waiting to be applied with others."""

    message: Decoded[Any]
    enqueued_at: datetime | None
    #: Its log context (message id, correlation id...), bound again while it is applied.
    context: Mapping[str, Any]


@dataclass(frozen=True)
class _AppliedTogether:
    """What became of one delivery in a group that committed."""

    #: False when every part of it was applied before (a redelivery).
    new: bool
    #: What the ``after_commit`` seam raised for it: raised again in its own thread.
    crash: Exception | None = None


@dataclass
class Consumer:
    """Applies messages of one endpoint; the dramatiq actor is a one-line call to :meth:`receive`.

    Messages that arrive while another of the queue is being applied are applied together, each
    as its own message, in one unit of work (``shared.delivery_groups``): under load a queue
    commits once per group, not once per message, and what the group emits leaves together.
    """

    endpoint: Endpoint
    side: Side
    registry: ContractRegistry
    database: SideDatabase
    relay: Outbox
    verifier: Verifier
    metrics: Metrics | None = None
    #: Test seam: called after the commit and before the relay, to simulate a crash there.
    after_commit: FaultHook | None = field(default=None)
    _groups: DeliveryGroups[_Delivery, _AppliedTogether | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._groups = DeliveryGroups(self._apply_together, max_rows=MAX_ROWS)

    def waiting(self) -> int:
        """How many deliveries of the queue wait to be applied together while one is being applied."""
        return self._groups.waiting()

    def receive(self, body: str) -> None:
        with self.relay.applying():
            self._received(body)

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
                self._receive_in_turn(message, _enqueued_at(current))

    def _receive_in_turn(self, message: Decoded[Any], enqueued_at: datetime | None) -> None:
        """Apply the message alone when no other delivery of the queue waits with it, else with them."""
        delivery = _Delivery(message, enqueued_at, current_context())
        outcome = self._groups.submit(
            delivery, len(message.payload.rows), alone=lambda: self._receive(message, enqueued_at)
        )
        if outcome is ALONE:  # its group failed: nothing of it was kept
            self._receive(message, enqueued_at)
        elif isinstance(outcome, _AppliedTogether):
            if outcome.crash is not None:
                raise outcome.crash
            if not outcome.new:
                self._relay_caused_by(message)

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
        if outgoing is None:
            self._relay_caused_by(message)
        elif outgoing:
            self.relay.send_committed(outgoing)

    def _relay_caused_by(self, message: Decoded[Any]) -> None:
        """A redelivery also sends what an earlier, crashed delivery of this message committed and
        did not send."""
        causes = {part.message_id for part in message.parts} | {str(message.envelope.message_id)}
        self.relay.relay(caused_by=sorted(causes))

    def _apply(self, message: Decoded[Any], enqueued_at: datetime | None) -> list[Outgoing] | None:
        """Apply the message's new parts once; what they wrote to the outbox, or None when every
        part was applied before."""
        with UnitOfWork(self.database, self.side, cause=message.envelope, relay_after_commit=True) as uow:
            if not self._apply_in(uow, message, enqueued_at):
                return None
            uow.commit()
        return uow.outgoing

    def _apply_in(self, uow: UnitOfWork, message: Decoded[Any], enqueued_at: datetime | None) -> bool:
        """Claim the message's parts in ``uow`` and run the handler on the new ones; False when
        every part was applied before."""
        handler = self.endpoint.handlers.get(message.envelope.contract)
        if handler is None:
            raise WrongQueue(
                f"queue {self.endpoint.queue.name!r} does not take contract {message.envelope.contract!r}"
            )
        uow.cause = message.envelope
        new = uow.claim(message, self.endpoint.queue, enqueued_at)
        if new is None:
            log.info("duplicate message ignored")
            if self.metrics is not None:
                self.metrics.duplicate_ignored(self.endpoint.queue, message.envelope.contract)
            return False
        handler(new, uow)
        return True

    def _apply_together(self, deliveries: Sequence[_Delivery]) -> list[_AppliedTogether | None]:
        """Apply every delivery in one unit of work, each as the message it is (its own inbox rows,
        its own emitted ids), and send what they emitted at once. Raises, keeping nothing, if any
        of them fails: each is then applied alone (``shared.delivery_groups``)."""
        emitted: list[list[Outgoing] | None] = []
        with UnitOfWork(self.database, self.side, relay_after_commit=True) as uow:
            for delivery in deliveries:
                with logged_as(delivery.context):
                    start = len(uow.outgoing)
                    new = self._apply_in(uow, delivery.message, delivery.enqueued_at)
                    emitted.append(uow.outgoing[start:] if new else None)
            uow.commit()
        log.debug("messages applied together", messages=len(deliveries))
        outcomes: list[_AppliedTogether | None] = []
        sending: list[Outgoing] = []
        for delivery, outgoing in zip(deliveries, emitted, strict=True):
            outcome = self._committed_together(delivery, outgoing)
            if outcome.new and outcome.crash is None:
                sending.extend(outgoing or ())
            outcomes.append(outcome)
        if sending:
            self.relay.send_committed(sending)
        return outcomes

    def _committed_together(self, delivery: _Delivery, outgoing: list[Outgoing] | None) -> _AppliedTogether:
        with logged_as(delivery.context):
            if outgoing is None:
                return _AppliedTogether(new=False)
            try:
                self._count_applied(delivery.message, outgoing)
                if self.after_commit is not None:
                    self.after_commit(delivery.message)
            except Exception as crash:  # noqa: BLE001 - raised again in the delivery's own thread
                # Not sent from memory: its redelivery relays it from the outbox, as when alone.
                self.database.sent_marks.not_sending(m.message_id for m in outgoing)
                return _AppliedTogether(new=True, crash=crash)
            return _AppliedTogether(new=True)

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
