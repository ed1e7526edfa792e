"""The state of each table map, its active version and its counts, in the bridge's ``map_states``.

States, as dual-write has them:

- ``running``: messages are carried (a map without a row is running its declared version);
- ``paused``: messages are held in ``held_messages``, acked from the broker, none applied;
- ``stopped`` and ``not_running``: messages are refused (dead-lettered with the reason);
- ``initializing``: an initial sync is copying the master's rows; live messages are carried.

Every read that decides what to do with a message takes the map's row lock (``FOR UPDATE`` on
PostgreSQL; SQLite transactions start with ``BEGIN IMMEDIATE`` and hold the database's write lock),
so a pause, a resume or a release never interleaves with a message of the same map.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from contracts.maps import MAPS, MapDeclaration, map_declaration
from shared.database import insert_ignoring_duplicates
from shared.errors import BusinessRuleViolation
from workers.bridge.activity import ActivityKind, record_activity
from workers.bridge.tables import audit_log, held_messages, map_activity, map_states

#: Who "changed" a map that nobody has touched yet: its declaration.
DECLARED = "declaration"


class MapState(StrEnum):
    NOT_RUNNING = "not_running"
    INITIALIZING = "initializing"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    @property
    def holds(self) -> bool:
        return self is MapState.PAUSED

    @property
    def refuses(self) -> bool:
        return self in (MapState.STOPPED, MapState.NOT_RUNNING)


class MapStateError(BusinessRuleViolation):
    """Raised when an operator asks for a state change the map's state does not allow."""


#: What an operator may do from each state (the target state of each command).
ALLOWED: dict[MapState, frozenset[MapState]] = {
    MapState.PAUSED: frozenset({MapState.RUNNING, MapState.INITIALIZING}),
    MapState.RUNNING: frozenset({MapState.PAUSED, MapState.STOPPED, MapState.INITIALIZING, MapState.NOT_RUNNING}),
    MapState.INITIALIZING: frozenset({MapState.PAUSED, MapState.STOPPED, MapState.RUNNING, MapState.NOT_RUNNING}),
    MapState.STOPPED: frozenset({MapState.RUNNING, MapState.NOT_RUNNING, MapState.INITIALIZING}),
    MapState.NOT_RUNNING: frozenset({MapState.RUNNING, MapState.STOPPED, MapState.INITIALIZING}),
}
# Stopping is always possible: it is the operator's emergency brake.
ALLOWED[MapState.PAUSED] = ALLOWED[MapState.PAUSED] | {MapState.STOPPED}


@dataclass(frozen=True)
class MapStatus:
    """A map's row of ``map_states`` (or the defaults of a map nobody has touched), with its hold."""

    map: str
    state: MapState
    active_version: int
    applied: int
    failed: int
    last_error: str | None
    last_error_at: datetime | None
    reason: str | None
    changed_at: datetime
    changed_by: str
    held: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "map": self.map,
            "state": self.state.value,
            "version": self.active_version,
            "applied": self.applied,
            "failed": self.failed,
            "held": self.held,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "reason": self.reason,
            "changed_at": self.changed_at.isoformat(),
            "changed_by": self.changed_by,
        }


def now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _status(row: Any) -> MapStatus:
    return MapStatus(
        map=row.map,
        state=MapState(row.state),
        active_version=row.active_version,
        applied=0,
        failed=row.failed,
        last_error=row.last_error,
        last_error_at=_aware(row.last_error_at),
        reason=row.reason,
        changed_at=_aware(row.changed_at),
        changed_by=row.changed_by,
    )


def _default_row(declaration: MapDeclaration) -> dict[str, Any]:
    return {
        "map": declaration.name,
        "state": MapState.RUNNING.value,
        "active_version": declaration.version,
        "failed": 0,
        "changed_at": now(),
        "changed_by": DECLARED,
    }


# Built once: every message of every map runs one of these (SQLite has a single writer, no row locks).
_READ_STATE = select(map_states).where(map_states.c.map == bindparam("b_map"))
_SHARE_STATE = _READ_STATE.with_for_update(read=True)
_LOCK_STATE = _READ_STATE.with_for_update()


def lock_state(connection: Connection, name: str, *, shared: bool = False) -> MapStatus:
    """The map's status, its row locked until the caller's transaction ends (created when missing).

    ``shared`` (a live message): ``FOR SHARE``, so the map's messages are carried side by side,
    while a state change or a release (``FOR UPDATE``) waits for them and they wait for it.

    A declaration whose version is newer than the row's active version was deployed: the map now
    runs it (recorded in the activity log as a version change by the next exclusive lock).
    """
    declaration = map_declaration(name)
    query = _READ_STATE if connection.dialect.name != "postgresql" else _SHARE_STATE if shared else _LOCK_STATE
    row = connection.execute(query, {"b_map": name}).one_or_none()
    if row is None:  # the map's first message or command: its row, then its lock
        insert_ignoring_duplicates(connection, map_states, [_default_row(declaration)])
        row = connection.execute(query, {"b_map": name}).one()
    status = _status(row)
    if declaration.version > status.active_version:
        if shared:  # writing the row under a shared lock could deadlock with another carrier
            return replace(status, active_version=declaration.version)
        status = _set_version(connection, status, declaration.version, DECLARED, "declaration deployed")
    return status


def read_states(connection: Connection) -> list[MapStatus]:
    """Every declared map's status, in declaration order, with how many messages it holds."""
    rows = {row.map: _status(row) for row in connection.execute(select(map_states))}
    held = dict(
        connection.execute(select(held_messages.c.map, func.count()).group_by(held_messages.c.map)).all()
    )
    carried = dict(
        connection.execute(
            select(map_activity.c.map, func.count())
            .where(map_activity.c.kind.in_([ActivityKind.APPLIED.value, ActivityKind.RELEASED.value]))
            .group_by(map_activity.c.map)
        ).all()
    )
    statuses = []
    for declaration in MAPS:
        status = rows.get(declaration.name)
        if status is None:
            default = _default_row(declaration)
            status = MapStatus(applied=0, last_error=None, last_error_at=None, reason=None, **default)  # type: ignore[arg-type]
            status = replace(status, state=MapState.RUNNING)
        if declaration.version > status.active_version:
            status = replace(status, active_version=declaration.version)
        applied = carried.get(declaration.name, 0)  # applied and released lines of its activity log
        statuses.append(replace(status, applied=applied, held=held.get(declaration.name, 0)))
    return statuses


def read_state(connection: Connection, name: str) -> MapStatus:
    map_declaration(name)  # KeyError for an unknown map
    return next(status for status in read_states(connection) if status.map == name)


def change_state(connection: Connection, name: str, state: MapState, *, reason: str | None, by: str) -> MapStatus:
    """Move the map to ``state`` (row locked), logged in its activity log; the status before.

    Raises MapStateError when the state does not allow it; asking for the state it is in does nothing.
    """
    before = lock_state(connection, name)
    if before.state is state:
        return before
    if state not in ALLOWED[before.state]:
        raise MapStateError(f"table map {name} is {before.state.value}; it cannot become {state.value} from there")
    connection.execute(
        map_states.update()
        .where(map_states.c.map == name)
        .values(state=state.value, reason=reason, changed_at=now(), changed_by=by)
    )
    record_activity(
        connection, name, ActivityKind.STATE, detail={"from": before.state.value, "to": state.value, "reason": reason, "by": by}
    )
    return before


def activate_version(connection: Connection, name: str, version: int, *, by: str) -> MapStatus:
    """Run ``version`` of the map's contract from now on; the status before."""
    before = lock_state(connection, name)
    if before.active_version != version:
        _set_version(connection, before, version, by, "activated")
    return before


def _set_version(connection: Connection, status: MapStatus, version: int, by: str, why: str) -> MapStatus:
    connection.execute(
        map_states.update().where(map_states.c.map == status.map).values(active_version=version, changed_at=now(), changed_by=by)
    )
    record_activity(
        connection, status.map, ActivityKind.VERSION, detail={"from": status.active_version, "to": version, "by": by, "why": why}
    )
    return replace(status, active_version=version, changed_by=by)


def count_failed(connection: Connection, name: str, error: str, at: datetime | None = None) -> None:
    """Add one failure and remember it as the map's last error (the caller holds the row lock)."""
    connection.execute(
        map_states.update()
        .where(map_states.c.map == name)
        .values(failed=map_states.c.failed + 1, last_error=error[:2000], last_error_at=at or now())
    )


def audit_entry(
    connection: Connection,
    operator: str,
    action: str,
    target: str,
    count: int,
    details: dict[str, Any],
    *,
    at: datetime | None = None,
) -> None:
    """A row of the operators' audit log (``dualwrite audit``), in the same transaction as the change."""
    connection.execute(
        audit_log.insert(),
        {
            "at": at or now(),
            "operator": operator,
            "action": action,
            "target": target[:200],
            "count": count,
            "details": json.dumps(details, default=str),
        },
    )
