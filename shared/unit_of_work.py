"""The unit of work a handler runs in: its effects, its inbox row and its outbox rows commit together.

The inbox records every *part* of a message (one business document's rows, see
``contracts.envelope.Part``) by its own id: a redelivered message finds its parts there and does
nothing, and a part that comes again in another batch is skipped while the rest are applied. A
handler that fails rolls back its effects and its outgoing parts alike, so a crash before commit
sends nothing, and a crash after commit leaves the outgoing parts in the outbox for the relay.
The unit of work keeps what it wrote to the outbox (``outgoing``) so the relay can send it from
memory once committed, and its transaction also writes the side's pending notes of parts sent
earlier (see ``shared.outbox``), which saves the relay a transaction of its own.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, select

from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import Queue
from contracts.registry import Decoded, MessagePart
from shared import outbox
from shared.database import inserted_keys
from shared.errors import ConflictingDuplicate
from shared.outbox import write_sent_marks
from shared.outbox_marks import Outgoing
from shared.side_database import SideDatabase

#: Outgoing message ids derive from the incoming one, so a re-run handler emits the same ids.
OUTBOX_NAMESPACE = uuid.UUID("6f1c2a4e-0d7b-4a51-9c8e-2b6d3f5a7e90")


def content_digest(envelope: Envelope) -> str:
    """The SHA-256 of what a message asks for (contract, version, source, company, payload), kept in
    the inbox beside its id. Not of its bytes: a publisher that sends a message again re-stamps
    ``occurred_at``, and that is the same message."""
    return _digest(envelope, envelope.payload)


def part_digest(envelope: Envelope, part: MessagePart) -> str:
    """What one part asks for: as :func:`content_digest` of a message that carried it alone."""
    if envelope.parts is None:
        return content_digest(envelope)
    return _digest(envelope, {"rows": envelope.payload["rows"][part.start : part.stop]})


#: Writes what a digest is taken of as ``json.dumps(content, sort_keys=True, separators=(",", ":"))``
#: did for the digests inboxes hold. Built once, and it does not track the containers it is in:
#: content is parsed JSON, never circular (a tenth faster, the same text).
_DIGESTED_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False)


def _digest(envelope: Envelope, payload: Any) -> str:
    content = [envelope.contract, envelope.version, envelope.source.value, envelope.legal_entity, payload]
    return hashlib.sha256(_DIGESTED_JSON.encode(content).encode("utf-8")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class UnitOfWork:
    """One database transaction on one side. Rolls back unless :meth:`commit` was called."""

    database: SideDatabase
    side: Side
    cause: Envelope | None = None
    #: The caller hands ``outgoing`` to ``Outbox.send_committed`` once committed.
    relay_after_commit: bool = False
    connection: Connection = field(init=False)
    emitted: list[str] = field(default_factory=list, init=False)
    #: What this transaction wrote to the outbox, for the relay to send once it has committed.
    outgoing: list[Outgoing] = field(default_factory=list, init=False)
    _committed: bool = field(default=False, init=False)
    _claimed: list[str] = field(default_factory=list, init=False)
    #: The outbox rows' other columns, written with ``outgoing`` in one statement at commit.
    _outbox_columns: list[dict[str, Any]] = field(default_factory=list, init=False)
    #: How many parts each cause has emitted so far: the next outgoing id derives from it.
    _emitted_by_cause: dict[str, int] = field(default_factory=dict, init=False)
    _started_at: datetime = field(default_factory=utcnow, init=False)

    def __enter__(self) -> "UnitOfWork":
        self.connection = self.database.engine.connect()
        self.connection.begin()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                self.connection.rollback()
        finally:
            self.connection.close()

    def commit(self) -> None:
        if self._claimed:
            self.connection.execute(
                self.database.messaging.finish_inbox, {"b_message_ids": self._claimed, "b_finished_at": utcnow()}
            )
        outbox.write(self.connection, self.database, self.outgoing, self._outbox_columns)
        marks, _ = write_sent_marks(self.connection, self.database)
        sending = [message.message_id for message in self.outgoing] if self.relay_after_commit else []
        self.database.sent_marks.sending(sending)
        try:
            self.connection.commit()
        except BaseException:
            self.database.sent_marks.put_back(marks)
            self.database.sent_marks.not_sending(sending)
            raise
        self._committed = True

    def claim(self, message: Decoded[Any], queue: Queue, enqueued_at: datetime | None) -> Decoded[Any] | None:
        """Record the message's parts in the inbox; the message reduced to the parts not applied
        before, or None when every part was (a redelivery).

        A part applied before that comes back asking for something else (its digest, see
        :func:`part_digest`, differs) is refused (ConflictingDuplicate), never silently dropped.
        """
        envelope = message.envelope
        digests = {part.message_id: part_digest(envelope, part) for part in message.parts}
        rows = [
            {
                "message_id": part.message_id,
                "contract": envelope.contract,
                "version": envelope.version,
                "queue_name": queue.name,
                "source": envelope.source.value,
                "legal_entity": envelope.legal_entity,
                "correlation_id": part.correlation_id,
                "causation_id": part.causation_id,
                "rows": part.rows,
                "enqueued_at": enqueued_at,
                "started_at": self._started_at,
                "finished_at": utcnow(),
                "digest": digests[part.message_id],
                "carried_by": message.carried_by,
            }
            for part in message.parts
        ]
        new = {key[0] for key in inserted_keys(self.connection, self.database.messaging.inbox, rows)}
        applied = [part.message_id for part in message.parts if part.message_id not in new]
        if applied:
            self._refuse_conflicts(applied, digests)
        self._claimed = [part.message_id for part in message.parts if part.message_id in new]
        if not new:
            return None
        if not applied:
            return message
        return message.only(part for part in message.parts if part.message_id in new)

    def _refuse_conflicts(self, applied: list[str], digests: dict[str, str]) -> None:
        inbox = self.database.messaging.inbox
        stored = self.connection.execute(
            select(inbox.c.message_id, inbox.c.digest).where(inbox.c.message_id.in_(applied))
        ).all()
        for message_id, digest in stored:
            if digest is not None and digest != digests[message_id]:
                raise ConflictingDuplicate(
                    f"message id {message_id} was applied before with other content "
                    f"(sha256 {digest[:12]}…, now {digests[message_id][:12]}…): a replay with another payload is refused"
                )

    def emit(
        self,
        queue: Queue,
        contract: str,
        version: int,
        payload: BaseModel | dict[str, Any],
        *,
        correlation_id: str,
        legal_entity: str | None = None,
        cause: MessagePart | None = None,
    ) -> Envelope:
        """Write an outgoing part to the outbox, to be sent once this transaction commits.

        ``cause`` is the part of the incoming message these rows come from (by default its
        first, the whole message when it has one part): the outgoing part's causation id and
        message id derive from it, so a handler run again emits the same ids.
        """
        if cause is None and self.cause is not None:
            cause = self.cause_part
        envelope = new_envelope(
            contract=contract,
            version=version,
            source=self.side,
            payload=payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload,
            correlation_id=correlation_id,
            legal_entity=legal_entity,
            causation_id=cause.message_id if cause else None,
            message_id=self._next_message_id(queue, cause),
        )
        message_id, body = str(envelope.message_id), envelope.model_dump_json()
        self.outgoing.append(
            Outgoing(queue.name, queue.actor_name, message_id, body, contract, version, self.side.value, legal_entity)
        )
        self._outbox_columns.append(
            {"correlation_id": correlation_id, "causation_id": envelope.causation_id, "created_at": utcnow()}
        )
        self.emitted.append(message_id)
        return envelope

    @property
    def cause_part(self) -> MessagePart | None:
        """The whole incoming message as one part (what ``emit`` derives from when not told)."""
        if self.cause is None:
            return None
        return MessagePart(str(self.cause.message_id), self.cause.correlation_id, self.cause.causation_id, 0, 0)

    def _next_message_id(self, queue: Queue, cause: MessagePart | None) -> uuid.UUID | None:
        if cause is None:
            return None
        count = self._emitted_by_cause.get(cause.message_id, 0)
        self._emitted_by_cause[cause.message_id] = count + 1
        return uuid.uuid5(OUTBOX_NAMESPACE, f"{cause.message_id}/{queue.name}/{count}")
