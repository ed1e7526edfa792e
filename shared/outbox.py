"""The outbox: the one owner of writing, sending, marking sent, sweeping and resending outgoing rows.

**Writing.** A unit of work emits *parts*: one business document's rows for one queue. They are
written to the side's ``outbox`` table in the unit of work's own transaction (``write``), so a
rollback sends nothing and a commit can never lose them.

**Sending.** Right after the commit, the parts are sent straight from memory (``send_committed``),
with whatever other threads of this process committed meanwhile: the first thread in sends
everything waiting, combined into as few messages as the rules of ``shared.outbox_batches``
allow, while the others go back to work. When this thread is the only one applying a message
(light load), its parts leave at once, a lone part unchanged. When other threads are applying
messages too (``applying``: the process has more work in hand), their parts will follow within
milliseconds, so the parts wait for them: they leave when no other message is being applied, or
after ``linger`` seconds, or once ``FLUSH_PARTS`` are waiting, whichever comes first. So batches
grow with the load and every hop after carries them on; idle, a part never waits.

**Marking.** Sent parts are noted in memory (``SentMarks``) and written as sent by the side's next
transaction, a handler's or the relay's, in one ``UPDATE`` (``write_sent_marks``): no transaction
of its own per message.

**Sweeping and resending.** A part stays unsent in the database until its note is written, so
nothing is lost on a crash at any point: the periodic sweeper sends any unsent part older than
``resend_after`` seconds (a crash after the commit and before the send, or after the send and
before the note), and a redelivered message relays what its crashed delivery committed
(``relay(caused_by=...)``). Two relays on one PostgreSQL database never take the same rows
(``FOR UPDATE SKIP LOCKED``). A part sent twice, alone or in another batch, is recognised by the
receiver's inbox, which records every part by its own id: its effect happens once.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from shared.broker_outage import is_broker_unavailable
from shared.database import supports_skip_locked
from shared.logging import get_logger
from shared.outbox_batches import DEFAULT_MAX_BYTES, KeyFields, WireMessage, combine
from shared.outbox_marks import Outgoing
from shared.side_database import SideDatabase

if TYPE_CHECKING:
    from contracts.registry import ContractRegistry

log = get_logger(__name__)

Send = Callable[[str, str, str, str], None]
"""Send(queue_name, actor_name, message_id, body)."""

#: How old an unsent row must be before the sweeper sends it: the relay that committed it sends it
#: within milliseconds, and a sweeper taking it meanwhile would only send it twice.
DEFAULT_RESEND_AFTER = 5.0

#: Under load, how long committed parts may wait for the parts other threads are about to commit.
DEFAULT_LINGER = 0.05

#: Under load, parts leave at once when this many wait.
FLUSH_PARTS = 500


def catalog_key_fields(contract: str, version: int) -> tuple[str, ...]:
    """The integration key of every contract this system knows (``contracts.catalog``)."""
    return _catalog().key_fields(contract, version)


@functools.cache
def _catalog() -> "ContractRegistry":
    from contracts.catalog import default_registry  # the catalog imports the workers' contracts

    return default_registry()


def write(connection: Connection, database: SideDatabase, outgoing: Sequence[Outgoing], created: Iterable[dict[str, Any]]) -> None:
    """Write a unit of work's parts to the outbox, in its transaction (one statement for them all)."""
    rows = [
        {"message_id": part.message_id, "queue_name": part.queue_name, "actor_name": part.actor_name,
         "contract": part.contract, "body": part.body, **columns}
        for part, columns in zip(outgoing, created, strict=True)
    ]
    if rows:
        connection.execute(database.messaging.insert_outbox, rows)


class Outbox:
    """Sends one side's outbox: from memory after each commit, and by sweeping what a crash left."""

    def __init__(
        self,
        database: SideDatabase,
        send: Send,
        *,
        key_fields: KeyFields = catalog_key_fields,
        batch_size: int = 500,
        resend_after: float = DEFAULT_RESEND_AFTER,
        max_bytes: int = DEFAULT_MAX_BYTES,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self.database = database
        self.send = send
        self.key_fields = key_fields
        self.batch_size = batch_size
        self.resend_after = resend_after
        self.max_bytes = max_bytes
        self.linger = linger
        self._waiting: list[Outgoing] = []
        self._waiting_since: float | None = None
        self._waiting_lock = threading.Lock()
        self._sender = threading.Lock()
        #: Threads of this process applying a message right now (``applying``).
        self._applying = 0
        self._timer_running = False
        self._wake_timer = threading.Condition(self._waiting_lock)
        self._closed = False

    # -- how busy the process is -------------------------------------------------------------------

    @contextmanager
    def applying(self) -> Iterator[None]:
        """Around the application of one incoming message: while others are applied too, what each
        commits waits for the others' parts (up to ``linger``) so that they leave together."""
        with self._waiting_lock:
            self._applying += 1
        try:
            yield
        finally:
            with self._waiting_lock:
                self._applying -= 1
                idle = self._applying == 0 and bool(self._waiting)
            if idle:
                self._drain_quietly()

    # -- from memory, right after a commit ---------------------------------------------------------

    def send_committed(self, outgoing: Sequence[Outgoing]) -> None:
        """Send what a committed unit of work (``relay_after_commit``) wrote, with whatever else waits.

        If another thread is sending, it takes these too and this call returns at once. A send
        that fails raises here; what it was sending is left to the sweeper (and the caller's
        redelivery), never dropped.
        """
        with self._waiting_lock:
            self._waiting.extend(outgoing)
            now = time.monotonic()
            if self._waiting_since is None:
                self._waiting_since = now
            hold = (
                self.linger > 0
                and not self._closed
                and self._applying > 1
                and len(self._waiting) < FLUSH_PARTS
                and now - self._waiting_since < self.linger
            )
            if hold:
                self._start_timer()
        if not hold:
            self._drain()

    def flush(self) -> None:
        """Send what waits now (a stopping worker's last act before its final relay)."""
        with self._waiting_lock:
            self._closed = True
            self._wake_timer.notify_all()
        self._drain()

    def _drain(self) -> None:
        while self._sender.acquire(blocking=False):
            taken: list[Outgoing] = []
            try:
                with self._waiting_lock:
                    taken, self._waiting, self._waiting_since = self._waiting, [], None
                if taken:
                    self._send_all(taken)
            except BaseException:
                # The broker failed us: what was not sent, ours and what other threads left to us,
                # goes to a redelivery of the cause (the error retries it) or to the sweeper.
                with self._waiting_lock:
                    stranded, self._waiting, self._waiting_since = self._waiting, [], None
                self.database.sent_marks.not_sending(part.message_id for part in [*taken, *stranded])
                raise
            finally:
                self._sender.release()
            # Parts added after we took ours and before we let go are ours to send: the thread
            # that added them found the sender busy.
            with self._waiting_lock:
                if not self._waiting:
                    return

    def _drain_quietly(self) -> None:
        """Drain from a thread whose caller cannot act on a failure: the sweeper resends it."""
        try:
            self._drain()
        except Exception as error:  # noqa: BLE001 - left to the sweeper; the cause is logged
            if is_broker_unavailable(error):  # the outage is logged once where it was met (shared.broker_outage)
                log.debug("outbox parts left to the sweeper: the broker is unreachable", error=str(error))
                return
            log.warning("outbox parts left to the sweeper: sending failed", exc_info=True)

    def _start_timer(self) -> None:
        """The thread that sends what lingered too long (called with ``_waiting_lock`` held): one per
        outbox, started with the first part that waits and sleeping while none does, until ``flush``
        (a thread per linger would churn the allocator's per-thread arenas, and memory with them)."""
        if self._timer_running:
            self._wake_timer.notify()
            return
        self._timer_running = True
        threading.Thread(target=self._lingered, name=f"{self.database.side}-outbox-linger", daemon=True).start()

    def _lingered(self) -> None:
        while True:
            with self._waiting_lock:
                if self._closed:
                    self._timer_running = False
                    return
                if self._waiting_since is None:
                    self._wake_timer.wait()
                    continue
                due = self._waiting_since + self.linger - time.monotonic()
                if due > 0:
                    self._wake_timer.wait(timeout=due)
                    continue
            self._drain_quietly()
            with self._waiting_lock:
                if self._waiting_since is not None and not self._closed:
                    # Another thread is sending: it takes these too; look again a little later.
                    self._wake_timer.wait(timeout=self.linger)

    def final_relay(self) -> int:
        """A stopping side's last act: what waits in memory, then every unsent row; how many rows."""
        self.flush()
        return self.relay()

    def _send_all(self, taken: list[Outgoing]) -> None:
        marks = self.database.sent_marks
        messages = combine(taken, self.key_fields, max_bytes=self.max_bytes)
        for message in messages:
            self.send(message.queue_name, message.actor_name, message.message_id, message.body)
            marks.sent(message.part_ids, datetime.now(UTC))
        if len(messages) < len(taken):
            log.debug("outbox parts combined", parts=len(taken), messages=len(messages))

    # -- from the database: redeliveries, the sweeper, the last run --------------------------------

    def relay(self, *, caused_by: Iterable[str] | str | None = None) -> int:
        """Send unsent parts (only those caused by these parts, if given); returns how many parts."""
        causes = [caused_by] if isinstance(caused_by, str) else (list(caused_by) if caused_by is not None else None)
        return self._relay(caused_by=causes, created_before=None)

    def sweep(self) -> int:
        """Send the unsent parts older than ``resend_after`` seconds: those a crash left behind."""
        return self._relay(caused_by=None, created_before=datetime.now(UTC) - timedelta(seconds=self.resend_after))

    def _relay(self, *, caused_by: list[str] | None, created_before: datetime | None) -> int:
        sent = 0
        while True:
            count = self._relay_batch(caused_by, created_before)
            sent += count
            if count < self.batch_size:
                return sent

    def _relay_batch(self, caused_by: list[str] | None, created_before: datetime | None) -> int:
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
                query = query.where(outbox.c.causation_id.in_(caused_by))
            if sending:
                query = query.where(outbox.c.message_id.not_in(sending))
            if created_before is not None:
                query = query.where(outbox.c.created_at < created_before)
            if supports_skip_locked(connection):
                query = query.with_for_update(skip_locked=True)
            try:
                rows = connection.execute(query).all()
                parts = [Outgoing.from_row(row.queue_name, row.actor_name, row.message_id, row.body) for row in rows]
                for message in self._messages(parts):
                    self.send(message.queue_name, message.actor_name, message.message_id, message.body)
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

    def _messages(self, parts: list[Outgoing]) -> list[WireMessage]:
        return combine(parts, self.key_fields, max_bytes=self.max_bytes)

    def backlog(self) -> int:
        """Parts not yet sent (the notes of those already sent are written first)."""
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
    """Write the notes of parts sent since the last time, in the caller's transaction.

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
