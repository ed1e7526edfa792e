"""The unit of work a handler runs in: its effects, its inbox row and its outbox rows commit together.

A redelivered message finds its inbox row and does nothing. A handler that fails rolls back its
effects and its outgoing messages alike, so a crash before commit sends nothing, and a crash
after commit leaves the outgoing messages in the outbox for the relay. The unit of work keeps
what it wrote to the outbox (``outgoing``) so the relay can send it from memory once committed,
and its transaction also writes the side's pending notes of messages sent earlier (see
``shared.outbox``), which saves the relay a transaction of its own.
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
from contracts.registry import Decoded
from shared.database import insert_ignoring_duplicates
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
    content = [envelope.contract, envelope.version, envelope.source.value, envelope.legal_entity, envelope.payload]
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class UnitOfWork:
    """One database transaction on one side. Rolls back unless :meth:`commit` was called."""

    database: SideDatabase
    side: Side
    cause: Envelope | None = None
    #: The caller hands ``outgoing`` to ``OutboxRelay.send_committed`` once committed.
    relay_after_commit: bool = False
    connection: Connection = field(init=False)
    emitted: list[str] = field(default_factory=list, init=False)
    #: What this transaction wrote to the outbox, for the relay to send once it has committed.
    outgoing: list[Outgoing] = field(default_factory=list, init=False)
    _committed: bool = field(default=False, init=False)
    _claimed: str | None = field(default=None, init=False)
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
        if self._claimed is not None:
            self.connection.execute(
                self.database.messaging.finish_inbox, {"b_message_id": self._claimed, "b_finished_at": utcnow()}
            )
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

    def claim(self, message: Decoded[Any], queue: Queue, enqueued_at: datetime | None, digest: str) -> bool:
        """Record the message in the inbox; False when it was applied before (a redelivery).

        ``digest`` is the message's :func:`content_digest`: a message id applied before that comes
        back asking for something else is refused (ConflictingDuplicate), never silently dropped.
        """
        envelope = message.envelope
        inserted = insert_ignoring_duplicates(
            self.connection,
            self.database.messaging.inbox,
            [
                {
                    "message_id": str(envelope.message_id),
                    "contract": envelope.contract,
                    "version": envelope.version,
                    "queue_name": queue.name,
                    "source": envelope.source.value,
                    "legal_entity": envelope.legal_entity,
                    "correlation_id": envelope.correlation_id,
                    "causation_id": envelope.causation_id,
                    "rows": len(message.payload.rows),
                    "enqueued_at": enqueued_at,
                    "started_at": self._started_at,
                    "finished_at": utcnow(),
                    "digest": digest,
                }
            ],
        )
        if inserted == 1:
            self._claimed = str(envelope.message_id)
            return True
        inbox = self.database.messaging.inbox
        applied = self.connection.scalar(select(inbox.c.digest).where(inbox.c.message_id == str(envelope.message_id)))
        if applied is not None and applied != digest:
            raise ConflictingDuplicate(
                f"message id {envelope.message_id} was applied before with other content "
                f"(sha256 {applied[:12]}…, now {digest[:12]}…): a replay with another payload is refused"
            )
        return False

    def emit(
        self,
        queue: Queue,
        contract: str,
        version: int,
        payload: BaseModel | dict[str, Any],
        *,
        correlation_id: str,
        legal_entity: str | None = None,
    ) -> Envelope:
        """Write an outgoing message to the outbox, to be sent once this transaction commits."""
        envelope = new_envelope(
            contract=contract,
            version=version,
            source=self.side,
            payload=payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload,
            correlation_id=correlation_id,
            legal_entity=legal_entity,
            causation_id=str(self.cause.message_id) if self.cause else None,
            message_id=self._next_message_id(queue),
        )
        message_id, body = str(envelope.message_id), envelope.model_dump_json()
        self.connection.execute(
            self.database.messaging.insert_outbox,
            {
                "message_id": message_id,
                "queue_name": queue.name,
                "actor_name": queue.actor_name,
                "contract": contract,
                "correlation_id": correlation_id,
                "causation_id": envelope.causation_id,
                "body": body,
                "created_at": utcnow(),
            },
        )
        self.emitted.append(message_id)
        self.outgoing.append(Outgoing(queue.name, queue.actor_name, message_id, body))
        return envelope

    def _next_message_id(self, queue: Queue) -> uuid.UUID | None:
        if self.cause is None:
            return None
        return uuid.uuid5(OUTBOX_NAMESPACE, f"{self.cause.message_id}/{queue.name}/{len(self.emitted)}")
