"""The hops of one business document: every message applied or dead-lettered for a correlation id.

Each side's inbox records what it applied and when; its dead letters record what it refused. Read
together, in time order, they say where a document went.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from shared.side_database import SideDatabase


@dataclass(frozen=True)
class Hop:
    side: str
    queue: str
    contract: str | None
    version: int | None
    rows: int | None
    at: datetime
    waited_ms: float | None
    ran_ms: float | None
    result: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds() * 1000, 1)


def hops(databases: Iterable[SideDatabase], correlation_id: str) -> list[Hop]:
    found: list[Hop] = []
    for database in databases:
        inbox, dead = database.messaging.inbox, database.messaging.dead_letters
        with database.engine.connect() as connection:
            for row in connection.execute(select(inbox).where(inbox.c.correlation_id == correlation_id)).mappings():
                enqueued, started, finished = (_aware(row[k]) for k in ("enqueued_at", "started_at", "finished_at"))
                found.append(
                    Hop(database.side, row["queue_name"], row["contract"], row["version"], row["rows"], started,
                        _ms(started, enqueued), _ms(finished, started), "applied")
                )
            for row in connection.execute(select(dead).where(dead.c.correlation_id == correlation_id)).mappings():
                found.append(
                    Hop(database.side, row["queue_name"], row["contract"], None, None, _aware(row["dead_at"]),
                        None, None, f"dead-lettered: {row['error_type']}: {row['error']}")
                )
    return sorted(found, key=lambda hop: hop.at)
