"""Each table map's activity log: what it applied, failed, held, released, and why its state changed.

One row per event, in the bridge database (``map_activity``), written in the same transaction
as the event itself, so the log never claims what did not happen. ``dualwrite maps log`` reads it;
the alert rules count its failures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, select

from workers.bridge.tables import map_activity


class ActivityKind(StrEnum):
    """What happened to a map; free text is accepted too, these are the ones the bridge writes."""

    APPLIED = "applied"
    FAILED = "failed"
    REFUSED = "refused"
    HELD = "held"
    RELEASED = "released"
    STATE = "state"
    ALERT = "alert"
    VERSION = "version"
    CONFLICT = "conflict"
    ECHO = "echo"
    INITIAL_SYNC = "initial-sync"
    #: A message the target side had refused, applied there once an operator replayed it.
    REPLAYED = "replayed"


@dataclass(frozen=True)
class Activity:
    id: int
    at: datetime
    map: str
    kind: str
    message_id: str | None
    correlation_id: str | None
    key: str | None
    detail: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "map": self.map,
            "kind": self.kind,
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "key": self.key,
            "detail": self.detail,
        }


def record_activity(
    connection: Connection,
    map_name: str,
    kind: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    key: str | Sequence[str] | Mapping[str, Any] | None = None,
    detail: str | Mapping[str, Any] | Sequence[Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add one event to a map's log, inside the caller's transaction."""
    record_activities(
        connection,
        [activity_row(map_name, kind, message_id=message_id, correlation_id=correlation_id, key=key, detail=detail, at=at)],
    )


def record_activities(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add events (``activity_row``) to the maps' log in one statement, inside the caller's transaction."""
    if rows:
        connection.execute(map_activity.insert(), list(rows))


def activity_row(
    map_name: str,
    kind: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    key: str | Sequence[str] | Mapping[str, Any] | None = None,
    detail: str | Mapping[str, Any] | Sequence[Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One event of a map's log, as ``record_activities`` writes it."""
    return {
        "at": at or datetime.now(UTC),
        "map": map_name,
        "kind": str(kind),
        "message_id": str(message_id) if message_id is not None else None,
        "correlation_id": correlation_id,
        "key": _key_text(key),
        "detail": detail if isinstance(detail, str) or detail is None else json.dumps(detail, default=str),
    }


def _key_text(key: str | Sequence[str] | Mapping[str, Any] | None) -> str | None:
    if key is None or isinstance(key, str):
        return key
    if isinstance(key, Mapping):
        return ", ".join(f"{name}={value}" for name, value in key.items())
    return "; ".join(str(each) for each in key)


def activity_log(
    connection: Connection, map_name: str, *, limit: int = 50, kinds: Sequence[str] = (), oldest_first: bool = False
) -> list[Activity]:
    """The map's latest ``limit`` events (newest first unless ``oldest_first``)."""
    table = map_activity
    query = select(table).where(table.c.map == map_name)
    if kinds:
        query = query.where(table.c.kind.in_([str(k) for k in kinds]))
    newest = query.order_by(table.c.id.desc()).limit(limit)
    rows = list(connection.execute(newest))
    if oldest_first:
        rows.reverse()
    return [_activity(row) for row in rows]


def count_since(connection: Connection, map_name: str, kind: str, since: datetime) -> int:
    table = map_activity
    query = select(func.count()).where(table.c.map == map_name, table.c.kind == str(kind), table.c.at >= since)
    return connection.scalar(query) or 0


def _activity(row: Any) -> Activity:
    detail: Any = row.detail
    if isinstance(detail, str) and detail[:1] in ("{", "["):
        try:
            detail = json.loads(detail)
        except ValueError:
            pass
    at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
    return Activity(row.id, at, row.map, row.kind, row.message_id, row.correlation_id, row.key, detail)
