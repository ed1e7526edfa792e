"""The outbox relay: sends committed outgoing messages to the broker and marks them sent.

Right after a handler commits, the relay sends what that transaction wrote straight from memory
(the unit of work knows it) and notes the rows as sent; the notes are written by the side's next
transaction, or the sweeper's, in one ``UPDATE`` (``SentMarks``). That spares every message a
second transaction of its own.

Nothing is lost on a crash at any point: a row stays unsent in the database until its note is
written, so the periodic sweeper sends again any unsent row older than ``resend_after`` seconds
(a crash after the commit and before the send, or after the send and before the note), and a
redelivered message relays what its crashed delivery committed. Two relays on one PostgreSQL
database never take the same rows (``FOR UPDATE SKIP LOCKED``). A message sent twice this way is
recognised by the receiving inbox, so its effect still happens once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, func, select

from shared.database import supports_skip_locked
from shared.logging import get_logger
from shared.outbox_marks import Outgoing
from shared.side_database import SideDatabase

log = get_logger(__name__)

Send = Callable[[str, str, str, str], None]
"""Send(queue_name, actor_name, message_id, body)."""

#: How old an unsent row must be before the sweeper sends it: the relay that committed it sends it
#: within milliseconds, and a sweeper taking it meanwhile would only send it twice.
DEFAULT_RESEND_AFTER = 5.0


class OutboxRelay:
    def __init__(
        self, database: SideDatabase, send: Send, *, batch_size: int = 500, resend_after: float = DEFAULT_RESEND_AFTER
    ) -> None:
        self.database = database
        self.send = send
        self.batch_size = batch_size
        self.resend_after = resend_after

    def send_committed(self, outgoing: Sequence[Outgoing]) -> None:
        """Send what a committed unit of work (``relay_after_commit``) wrote to the outbox, and note it sent."""
        marks = self.database.sent_marks
        for index, message in enumerate(outgoing):
            try:
                self.send(message.queue_name, message.actor_name, message.message_id, message.body)
            except BaseException:
                # Left to a redelivery of the cause (the error retries it) or to the sweeper.
                marks.not_sending(m.message_id for m in outgoing[index:])
                raise
            marks.sent(message.message_id, datetime.now(UTC))

    def relay(self, *, caused_by: str | None = None) -> int:
        """Send unsent messages (only those caused by one message, if given); returns how many."""
        return self._relay(caused_by=caused_by, created_before=None)

    def sweep(self) -> int:
        """Send the unsent messages older than ``resend_after`` seconds: those a crash left behind."""
        return self._relay(caused_by=None, created_before=datetime.now(UTC) - timedelta(seconds=self.resend_after))

    def _relay(self, *, caused_by: str | None, created_before: datetime | None) -> int:
        sent = 0
        while True:
            count = self._relay_batch(caused_by, created_before)
            sent += count
            if count < self.batch_size:
                return sent

    def _relay_batch(self, caused_by: str | None, created_before: datetime | None) -> int:
        outbox = self.database.messaging.outbox
        with self.database.engine.connect() as connection:
            connection.begin()
            marks, sending = write_sent_marks(connection, self.database)
            query = (
                select(outbox.c.id, outbox.c.queue_name, outbox.c.actor_name, outbox.c.message_id, outbox.c.body)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            )
            if caused_by is not None:
                query = query.where(outbox.c.causation_id == caused_by)
            if sending:
                query = query.where(outbox.c.message_id.not_in(sending))
            if created_before is not None:
                query = query.where(outbox.c.created_at < created_before)
            if supports_skip_locked(connection):
                query = query.with_for_update(skip_locked=True)
            try:
                rows = connection.execute(query).all()
                for row in rows:
                    self.send(row.queue_name, row.actor_name, row.message_id, row.body)
                if rows:
                    connection.execute(
                        outbox.update()
                        .where(outbox.c.id.in_([row.id for row in rows]))
                        .values(sent_at=datetime.now(UTC))
                    )
                connection.commit()
            except BaseException:
                self.database.sent_marks.put_back(marks)
                raise
        if rows and created_before is not None:
            log.info("outbox rows sent by the sweeper", rows=len(rows))
        return len(rows)

    def backlog(self) -> int:
        """Messages not yet sent (the notes of those already sent are written first)."""
        outbox = self.database.messaging.outbox
        with self.database.engine.connect() as connection:
            connection.begin()
            marks, _ = write_sent_marks(connection, self.database)
            try:
                connection.commit()
            except BaseException:
                self.database.sent_marks.put_back(marks)
                raise
            return connection.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) or 0


def write_sent_marks(connection: Connection, database: SideDatabase) -> tuple[dict[str, datetime], frozenset[str]]:
    """Write the notes of messages sent since the last time, in the caller's transaction.

    Returns the notes written, which the caller puts back (``sent_marks.put_back``) if its
    transaction does not commit, and the ids this process is sending at this moment.
    """
    marks, sending = database.sent_marks.take()
    if not marks:
        return marks, sending
    try:
        # One time for the lot: the latest send among them, all made since the last notes were written.
        connection.execute(
            database.messaging.mark_sent, {"b_message_ids": list(marks), "b_sent_at": max(marks.values())}
        )
    except BaseException:
        database.sent_marks.put_back(marks)
        raise
    return marks, sending
