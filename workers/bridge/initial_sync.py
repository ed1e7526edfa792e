"""The bridge's side of an initial sync: the record of each run, and which synced rows it carries.

- :func:`record_page_reports` handles the master's ``initial_sync_report`` (queue
  ``bridge.initial-sync``): each page once, each refused row with its key and reason; the run ends,
  and the map moves from ``initializing`` to ``running``, once every page up to the last is recorded,
  in whatever order the reports arrived.
- :func:`screen_rows` runs in the map's carrier for one-way maps with an initial sync (a two-way
  map's rows carry their own version, which decides instead: ``row_versions.py``). **Safe while live
  messages flow**: every row the bridge carries for such a map leaves its version in
  ``map_row_versions``, the master's time stamp (``occurred_at``) of the message that carried it,
  per integration key. A synced row is carried only when its page is newer than what was carried
  for its key; a live change newer than the synced copy has been carried already, so the copy is
  dropped (``superseded``) instead of overwriting it. Live rows are always carried, as before, and
  advance the version. The master stamps a page after reading its rows under a share lock, and a
  live change after writing its row, so on the master's clock the later stamp is the later state.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from contracts.envelope import Envelope
from contracts.initial_sync import InitialSyncReportV1
from contracts.maps import map_declaration
from contracts.registry import Decoded
from shared.database import insert_ignoring_duplicates
from shared.unit_of_work import UnitOfWork
from workers.bridge.initial_sync_tables import (
    initial_sync_failures,
    initial_sync_pages,
    initial_sync_rows,
    initial_sync_runs,
    map_row_versions,
)
from workers.bridge.activity import ActivityKind, record_activity
from workers.bridge.map_states import MapState, change_state
from workers.initial_sync_export import CORRELATION_PREFIX

RUNNING, FINISHED = "running", "finished"
CARRIED, SUPERSEDED = "carried", "superseded"


def utcnow() -> datetime:
    return datetime.now(UTC)


def key_text(values: Sequence[Any]) -> str:
    return json.dumps([str(value) for value in values], separators=(",", ":"))


def run_of(envelope: Envelope) -> str | None:
    """The run a message belongs to, from its correlation id; None for a live message."""
    if envelope.correlation_id.startswith(CORRELATION_PREFIX):
        return envelope.correlation_id[len(CORRELATION_PREFIX) :]
    return None


# -- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunProgress:
    """A run as operators see it: where it is, and what it carried, refused and superseded."""

    run_id: str
    map: str
    master: str
    state: str
    page_size: int
    total_rows: int | None
    started_at: datetime
    started_by: str
    updated_at: datetime
    finished_at: datetime | None
    resumes: int
    pages: int
    rows_read: int
    rows_sent: int
    rows_failed: int
    rows_carried: int
    rows_superseded: int
    #: The key of the last row of the highest page reported: where a resume starts after.
    checkpoint: list[str] | None
    next_page: int
    failures: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        return self.state == FINISHED

    @property
    def settled(self) -> bool:
        """Finished, and every row the master sent has reached the bridge (carried or superseded)."""
        return self.finished and self.rows_carried + self.rows_superseded >= self.rows_sent

    def as_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in ("started_at", "updated_at", "finished_at"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        return data


def start_run(
    connection: Connection, map_name: str, master: str, page_size: int, total_rows: int | None, operator: str
) -> str:
    now = utcnow()
    run_id = uuid.uuid4().hex
    connection.execute(
        initial_sync_runs.insert(),
        {
            "run_id": run_id,
            "map": map_name,
            "master": master,
            "state": RUNNING,
            "page_size": page_size,
            "total_rows": total_rows,
            "started_at": now,
            "started_by": operator,
            "updated_at": now,
            "resumes": 0,
        },
    )
    return run_id


def note_resume(connection: Connection, run_id: str) -> None:
    connection.execute(
        initial_sync_runs.update()
        .where(initial_sync_runs.c.run_id == run_id)
        .values(resumes=initial_sync_runs.c.resumes + 1, updated_at=utcnow())
    )


def latest_run(connection: Connection, map_name: str) -> RunProgress | None:
    run_id = connection.scalar(
        select(initial_sync_runs.c.run_id)
        .where(initial_sync_runs.c.map == map_name)
        .order_by(initial_sync_runs.c.started_at.desc())
        .limit(1)
    )
    return run_progress(connection, run_id) if run_id else None


def run_progress(connection: Connection, run_id: str) -> RunProgress | None:
    run = connection.execute(select(initial_sync_runs).where(initial_sync_runs.c.run_id == run_id)).mappings().first()
    if run is None:
        return None
    pages = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(initial_sync_pages.c.rows_read), 0),
            func.coalesce(func.sum(initial_sync_pages.c.rows_sent), 0),
            func.coalesce(func.sum(initial_sync_pages.c.rows_failed), 0),
            func.coalesce(func.max(initial_sync_pages.c.page), 0),
        ).where(initial_sync_pages.c.run_id == run_id)
    ).one()
    last = connection.scalar(
        select(initial_sync_pages.c.last_key)
        .where(initial_sync_pages.c.run_id == run_id, initial_sync_pages.c.page == pages[4])
    )
    outcomes = dict(
        connection.execute(
            select(initial_sync_rows.c.outcome, func.count())
            .where(initial_sync_rows.c.run_id == run_id)
            .group_by(initial_sync_rows.c.outcome)
        ).all()
    )
    failures = [
        {"key": json.loads(row.key), "page": row.page, "reason": row.reason}
        for row in connection.execute(
            select(initial_sync_failures)
            .where(initial_sync_failures.c.run_id == run_id)
            .order_by(initial_sync_failures.c.page, initial_sync_failures.c.key)
        )
    ]
    return RunProgress(
        **{name: run[name] for name in initial_sync_runs.c.keys()},
        pages=pages[0],
        rows_read=int(pages[1]),
        rows_sent=int(pages[2]),
        rows_failed=int(pages[3]),
        rows_carried=outcomes.get(CARRIED, 0),
        rows_superseded=outcomes.get(SUPERSEDED, 0),
        checkpoint=json.loads(last) if last else None,
        next_page=pages[4] + 1,
        failures=failures,
    )


# -- the master's page reports -------------------------------------------------------------------


def record_page_reports(message: Decoded[InitialSyncReportV1], uow: UnitOfWork) -> None:
    """Each page once; its refused rows each with key and reason; the run ends once every page is in.

    The last page's report does not end the run by itself: reports travel apart and two bridge
    threads (or a retry) can record page 3's before page 2's. The run is finished by whichever report
    completes it, when pages 1 to the last are all recorded (:func:`finish_if_complete`).
    """
    connection = uow.connection
    now = utcnow()
    for report in message.payload.rows:
        lock_run(connection, report.run_id)
        new = insert_ignoring_duplicates(
            connection,
            initial_sync_pages,
            [
                {
                    "run_id": report.run_id,
                    "page": report.page,
                    "after_key": key_text(report.after) if report.after else None,
                    "last_key": key_text(report.last) if report.last else None,
                    "rows_read": report.rows_read,
                    "rows_sent": report.rows_sent,
                    "rows_failed": len(report.failed),
                    "finished": report.finished,
                    "reported_at": now,
                }
            ],
        )
        if not new:
            continue
        insert_ignoring_duplicates(
            connection,
            initial_sync_failures,
            [
                {"run_id": report.run_id, "key": key_text(row.key), "page": report.page, "reason": row.reason, "at": now}
                for row in report.failed
            ],
        )
        connection.execute(
            initial_sync_runs.update().where(initial_sync_runs.c.run_id == report.run_id).values(updated_at=now)
        )
        note_page(connection, report, message.envelope)
        finish_if_complete(connection, report.run_id, report.table_map, now)


def lock_run(connection: Connection, run_id: str) -> None:
    """Serialise the reports of one run on its row, so the report completing it sees the others.

    PostgreSQL (read committed): a second report waits for the first to commit, and its next
    statements see that page. SQLite's writers are serialised already (``BEGIN IMMEDIATE``).
    """
    connection.execute(
        select(initial_sync_runs.c.run_id).where(initial_sync_runs.c.run_id == run_id).with_for_update()
    )


def finish_if_complete(connection: Connection, run_id: str, map_name: str, now: datetime) -> bool:
    """Finish the run (and set its map running) when pages 1 to its last page are all recorded.

    The last page is the first one the master reported as finished; a page missing below it is a
    report still on its way, and the run stays running until it arrives.
    """
    pages = initial_sync_pages.c
    last = connection.scalar(select(func.min(pages.page)).where(pages.run_id == run_id, pages.finished.is_(True)))
    if last is None:
        return False
    reported = connection.scalar(select(func.count()).where(pages.run_id == run_id, pages.page <= last))
    if reported < last:
        return False
    finished = connection.execute(
        initial_sync_runs.update()
        .where(initial_sync_runs.c.run_id == run_id, initial_sync_runs.c.state == RUNNING)
        .values(state=FINISHED, finished_at=now, updated_at=now)
    ).rowcount
    if finished:
        change_state(connection, map_name, MapState.RUNNING, reason=f"initial sync {run_id} finished", by="initial-sync")
    return bool(finished)


def note_page(connection: Connection, report: Any, envelope: Envelope) -> None:
    """The map's activity log: a line per page and per refused row.

    Refused rows are logged as ``initial-sync`` events, not ``failed`` ones: legacy rows refused by
    the contract must not trip the map's alert rules and pause it in the middle of its sync.
    """
    common = {"message_id": str(envelope.message_id), "correlation_id": envelope.correlation_id}
    record_activity(
        connection,
        report.table_map,
        ActivityKind.INITIAL_SYNC,
        detail={
            "run": report.run_id,
            "page": report.page,
            "rows_read": report.rows_read,
            "rows_sent": report.rows_sent,
            "rows_refused": len(report.failed),
            "finished": report.finished,
        },
        **common,
    )
    for row in report.failed:
        record_activity(
            connection, report.table_map, ActivityKind.INITIAL_SYNC, key=row.key, detail={"refused": row.reason}, **common
        )


# -- synced rows in the carrier ------------------------------------------------------------------


def row_keys(key_fields: Sequence[str], rows: Sequence[Any], envelope: Envelope) -> list[str]:
    """Each row's integration key as text; ``legal_entity`` comes from the envelope when rows lack it."""
    keys = []
    for row in rows:
        values = []
        for name in key_fields:
            value = row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
            if value is None and name == "legal_entity":
                value = envelope.legal_entity
            values.append(value)
        keys.append(key_text(values))
    return keys


def screen_rows(
    connection: Connection, map_name: str, key_fields: Sequence[str], envelope: Envelope, rows: Sequence[Any]
) -> list[Any]:
    """The rows to carry: all live rows; the synced rows newer than what was carried for their key."""
    keys = row_keys(key_fields, rows, envelope)
    advanced = advance_versions(connection, map_name, keys, envelope)
    run_id = run_of(envelope)
    if run_id is None:
        return list(rows)
    record_synced_rows(connection, run_id, keys, advanced)
    return [row for row, key in zip(rows, keys, strict=True) if key in advanced]


def record_synced_rows(connection: Connection, run_id: str, keys: Sequence[str], carried: set[str]) -> None:
    """Each synced row of a run once: carried, or superseded by a newer live change carried before it."""
    now = utcnow()
    insert_ignoring_duplicates(
        connection,
        initial_sync_rows,
        [{"run_id": run_id, "key": key, "outcome": CARRIED if key in carried else SUPERSEDED, "at": now} for key in keys],
    )


def advance_versions(connection: Connection, map_name: str, keys: Sequence[str], envelope: Envelope) -> set[str]:
    """Set each key's version to this message's stamp where that is newer; the keys it advanced.

    One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` statement: two bridge threads carrying the
    same key at once are serialised on its row, and the older stamp never wins.
    """
    if not keys:
        return set()
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[connection.dialect.name]
    statement = dialect.insert(map_row_versions)
    statement = statement.on_conflict_do_update(
        index_elements=["map", "key"],
        set_={"version": statement.excluded.version, "message_id": statement.excluded.message_id},
        where=map_row_versions.c.version < statement.excluded.version,
    ).returning(map_row_versions.c.key)
    rows = [
        {"map": map_name, "key": key, "version": envelope.occurred_at, "message_id": str(envelope.message_id)}
        for key in sorted(set(keys))
    ]
    return {row[0] for row in connection.execute(statement, rows)}


def screen_synced(connection: Connection, map_name: str, envelope: Envelope, rows: Sequence[Any]) -> list[Any]:
    """The carrier's hook: :func:`screen_rows` for one-way maps with an initial sync, every row for the others.

    A two-way map's rows carry their own version, which decides synced copies and live changes alike
    (``workers/bridge/row_versions.py``, which also records a synced row as carried or superseded):
    one notion of a row's version per map, not two checked one after the other.
    """
    declaration = map_declaration(map_name)
    if not declaration.initial_sync or declaration.two_way:
        return list(rows)
    return screen_rows(connection, map_name, declaration.key, envelope, rows)
