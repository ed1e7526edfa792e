"""The hold of a paused map: its messages as received, released in the order the source published them.

Release order is the envelope's ``occurred_at`` (stamped by the publisher when it wrote the
message: in its outbox transaction for a side, at publish time for an upstream system), then the
order of arrival at the bridge for messages stamped at the same instant. Arrival order alone would
not do: dramatiq's threads and processes, and a relay's retries, deliver in no particular order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, select

from contracts.registry import Decoded
from shared.database import insert_ignoring_duplicates
from workers.bridge.tables import held_messages


@dataclass(frozen=True)
class HeldMessage:
    sequence: int
    message_id: str
    body: str


def hold(connection: Connection, map_name: str, message: Decoded[Any], enqueued_at: datetime | None = None) -> bool:
    """Keep the message for the map's release; False when it was held already."""
    envelope = message.envelope
    return 1 == insert_ignoring_duplicates(
        connection,
        held_messages,
        [
            {
                "map": map_name,
                "message_id": str(envelope.message_id),
                "contract": envelope.contract,
                "version": envelope.version,
                "correlation_id": envelope.correlation_id,
                "published_at": envelope.occurred_at,
                "body": envelope.model_dump_json(),
                "enqueued_at": enqueued_at,
                "held_at": datetime.now(UTC),
            }
        ],
    )


#: Built once: every live message of a running map asks it.
_HOLDS_ANY = select(exists().where(held_messages.c.map == bindparam("b_map")))


def holds_any(connection: Connection, map_name: str) -> bool:
    return bool(connection.scalar(_HOLDS_ANY, {"b_map": map_name}))


def held_count(connection: Connection, map_name: str) -> int:
    return connection.scalar(select(func.count()).where(held_messages.c.map == map_name)) or 0


def next_held(connection: Connection, map_name: str, limit: int) -> list[HeldMessage]:
    """The first ``limit`` messages in release order (the caller holds the map's row lock)."""
    query = (
        select(held_messages.c.sequence, held_messages.c.message_id, held_messages.c.body)
        .where(held_messages.c.map == map_name)
        .order_by(held_messages.c.published_at, held_messages.c.sequence)
        .limit(limit)
    )
    return [HeldMessage(row.sequence, row.message_id, row.body) for row in connection.execute(query)]


def maps_holding(connection: Connection) -> list[str]:
    return sorted(connection.scalars(select(held_messages.c.map).distinct()))


def forget(connection: Connection, sequence: int) -> None:
    connection.execute(held_messages.delete().where(held_messages.c.sequence == sequence))
