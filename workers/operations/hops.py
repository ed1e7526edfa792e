"""The hops of business documents: every message a side applied, refused, or has still to send or take.

Each side's inbox records what it applied and when; its dead letters what it refused and why; its
outbox what it emitted and whether it was sent. Read together by correlation id, in time order,
they say where a document went and where it waits: a message in an outbox with no ``sent_at`` is
waiting to be sent, and a sent one that no inbox and no dead letter knows is waiting on its queue
(or being retried). A redelivered duplicate leaves no row (the inbox keeps one per message by
design), so it does not show here; the ``dualwrite_duplicates_ignored`` metric counts them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, select

from contracts.queues import all_queues
from shared.side_database import SideDatabase

APPLIED, DEAD_LETTERED = "applied", "dead-lettered"
IN_OUTBOX, ON_QUEUE = "waiting in outbox", "waiting on queue"

_CONSUMER = {queue.name: queue.consumer.value for queue in all_queues()}


@dataclass(frozen=True)
class Hop:
    """One step of a document: a message on a queue (kind ``message``) or a side's own work (``step``)."""

    at: datetime
    side: str
    queue: str
    contract: str | None
    version: int | None
    rows: int | None
    waited_ms: float | None
    ran_ms: float | None
    result: str
    detail: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    kind: str = "message"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def aware(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed_ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((aware(later) - aware(earlier)).total_seconds() * 1000, 1)


def hops(databases: Iterable[SideDatabase], correlation_id: str) -> list[Hop]:
    """The hops of one correlation id, in time order."""
    return message_hops(databases, [correlation_id])


def message_hops(databases: Iterable[SideDatabase], correlation_ids: Collection[str]) -> list[Hop]:
    """Every message of these correlation ids on every side given: applied, dead, or still waiting."""
    found: list[Hop] = []
    taken: set[str] = set()  # message ids some side applied or dead-lettered
    emitted: list[tuple[str, dict[str, Any]]] = []
    ids = sorted(set(correlation_ids))
    for database in databases:
        messaging = database.messaging
        with database.engine.connect() as connection:
            for row in _rows(connection, messaging.inbox, messaging.inbox.c.correlation_id.in_(ids)):
                found.append(applied_hop(database.side, row))
                taken.add(row["message_id"])
            for row in _rows(connection, messaging.dead_letters, messaging.dead_letters.c.correlation_id.in_(ids)):
                found.append(dead_letter_hop(database.side, row))
                taken.add(row["message_id"])
            emitted += [(database.side, row) for row in _rows(connection, messaging.outbox, messaging.outbox.c.correlation_id.in_(ids))]
    found += [waiting_hop(side, row) for side, row in emitted if row["message_id"] not in taken]
    return in_time_order(found)


def in_time_order(found: Iterable[Hop]) -> list[Hop]:
    return sorted(found, key=lambda hop: hop.at)


def _rows(connection: Connection, table: Table, *where: Any) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(select(table).where(*where)).mappings()]


def applied_hop(side: str, row: dict[str, Any]) -> Hop:
    started = aware(row["started_at"])
    return Hop(
        at=started,
        side=side,
        queue=row["queue_name"],
        contract=row["contract"],
        version=row["version"],
        rows=row["rows"],
        waited_ms=elapsed_ms(started, row["enqueued_at"]),
        ran_ms=elapsed_ms(row["finished_at"], started),
        result=APPLIED,
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
    )


def dead_letter_hop(side: str, row: dict[str, Any]) -> Hop:
    # What an operator did about it (replayed, edited, purged), where dead letters record that.
    outcome = row.get("outcome")
    return Hop(
        at=aware(row["dead_at"]),
        side=side,
        queue=row["queue_name"],
        contract=row["contract"],
        version=None,
        rows=None,
        waited_ms=None,
        ran_ms=None,
        result=f"{DEAD_LETTERED}, then {outcome}" if outcome else DEAD_LETTERED,
        detail=f"{row['error_type']}: {row['error']} (attempts: {row['attempts']})",
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
    )


def waiting_hop(emitter: str, row: dict[str, Any]) -> Hop:
    """An outbox message no side has taken yet: not sent, or sent and still on its queue."""
    created, sent = aware(row["created_at"]), aware(row["sent_at"])
    where = _CONSUMER.get(row["queue_name"], "?")
    if sent is None:
        result, detail = IN_OUTBOX, f"committed by {emitter}, not yet sent to the broker"
    else:
        result, detail = ON_QUEUE, f"sent by {emitter}, not yet applied by {where} (queued, or being retried)"
    return Hop(
        at=sent or created,
        side=where,
        queue=row["queue_name"],
        contract=row["contract"],
        version=None,
        rows=None,
        waited_ms=elapsed_ms(datetime.now(UTC), created),
        ran_ms=None,
        result=result,
        detail=detail,
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
    )
