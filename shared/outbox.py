"""The outbox relay: sends committed outgoing messages to the broker and marks them sent.

It runs right after each handler commits (for that handler's messages) and on a timer (for
anything a crash left behind). Two relays on one PostgreSQL database never take the same rows
(``FOR UPDATE SKIP LOCKED``). A crash between sending and marking sends a row again; the
receiving inbox recognises the repeated message id, so the effect still happens once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select

from shared.database import supports_skip_locked
from shared.logging import get_logger
from shared.side_database import SideDatabase

log = get_logger(__name__)

Send = Callable[[str, str, str, str], None]
"""Send(queue_name, actor_name, message_id, body)."""


class OutboxRelay:
    def __init__(self, database: SideDatabase, send: Send, *, batch_size: int = 500) -> None:
        self.database = database
        self.send = send
        self.batch_size = batch_size

    def relay(self, *, caused_by: str | None = None) -> int:
        """Send unsent messages (only those caused by one message, if given); returns how many."""
        sent = 0
        while True:
            count = self._relay_batch(caused_by)
            sent += count
            if count < self.batch_size:
                return sent

    def _relay_batch(self, caused_by: str | None) -> int:
        outbox = self.database.messaging.outbox
        with self.database.engine.begin() as connection:
            query = (
                select(outbox.c.id, outbox.c.queue_name, outbox.c.actor_name, outbox.c.message_id, outbox.c.body)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self.batch_size)
            )
            if caused_by is not None:
                query = query.where(outbox.c.causation_id == caused_by)
            if supports_skip_locked(connection):
                query = query.with_for_update(skip_locked=True)
            rows = connection.execute(query).all()
            for row in rows:
                self.send(row.queue_name, row.actor_name, row.message_id, row.body)
            if rows:
                connection.execute(
                    outbox.update()
                    .where(outbox.c.id.in_([row.id for row in rows]))
                    .values(sent_at=datetime.now(UTC))
                )
        return len(rows)

    def backlog(self) -> int:
        outbox = self.database.messaging.outbox
        with self.database.engine.connect() as connection:
            return connection.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) or 0
