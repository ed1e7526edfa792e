"""The dead-letter rows of the three sides, as the operator tools read and resolve them.

Each side records every death in its own ``dead_letters`` table (shared/dead_letters.py). A row
is never deleted: an operator's replay, edit or purge sets its ``outcome``; a replay refused
because the message still does not validate marks the row ``superseded`` and records the death
again with the new reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared import migrations
from shared.errors import DualWriteError
from shared.dead_letters import dead_letter_row, describe_error
from shared.settings import Settings
from shared.side import open_database
from shared.side_database import SideDatabase


class LedgerUnavailable(DualWriteError):
    """Raised when a side's database is missing or cannot be reached."""


class Outcome:
    REPLAYED = "replayed"
    EDITED = "edited"
    PURGED = "purged"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class DeadLetterRecord:
    """One death of one message, as its consuming side recorded it."""

    side: str
    row_id: int
    message_id: str
    queue_name: str
    actor_name: str
    contract: str | None
    correlation_id: str | None
    error_kind: str
    error_type: str
    error: str
    traceback: str | None
    attempts: int
    body: str
    dead_at: datetime
    outcome: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    replayed_body: str | None = None
    #: SHA-256 of the broker copy's exact bytes (shared/dead_letters.py ``copy_digest``); None in
    #: rows recorded before it was kept. The operator tools pair the row with its copy by it.
    copy_digest: str | None = None

    @property
    def dead(self) -> bool:
        return self.outcome is None


class DeadLetterLedgers:
    """The ``dead_letters`` tables of every side, by side name."""

    def __init__(self, databases: Mapping[str, SideDatabase], *, owned: bool = False) -> None:
        self.databases = dict(databases)
        self._owned = owned

    @classmethod
    def open(cls, settings: Settings) -> "DeadLetterLedgers":
        """The three sides' databases the settings name, their tables brought up to date."""
        from workers.runtime import SPECS

        databases: dict[str, SideDatabase] = {}
        try:
            for side, spec in SPECS.items():
                _check_exists(side.value, settings.database_url(side.value))
                databases[side.value] = open_database(spec, settings)
            ledgers = cls(databases, owned=True)
            ledgers.upgrade()
        except DBAPIError as error:
            for database in databases.values():
                database.dispose()
            raise LedgerUnavailable(f"database unavailable: {error.orig}") from None
        except LedgerUnavailable:
            for database in databases.values():
                database.dispose()
            raise
        return ledgers

    def upgrade(self) -> None:
        """Create or upgrade each side's schema (its migrations add the outcome columns to an old dead_letters)."""
        for database in self.databases.values():
            migrations.upgrade(database)

    def close(self) -> None:
        if self._owned:
            for database in self.databases.values():
                database.dispose()

    def dead(self) -> list[DeadLetterRecord]:
        """Every letter still dead, on every side, oldest first."""
        found = []
        for side, database in self.databases.items():
            table = database.messaging.dead_letters
            found += self._select(side, select(table).where(table.c.outcome.is_(None)))
        return sorted(found, key=lambda record: (record.dead_at, record.side, record.row_id))

    def history(self, message_ids: Iterable[str]) -> list[DeadLetterRecord]:
        """Every row, dead or resolved, of these messages, oldest first."""
        wanted = sorted(set(message_ids))
        found = []
        for side, database in self.databases.items():
            table = database.messaging.dead_letters
            found += self._select(side, select(table).where(table.c.message_id.in_(wanted)))
        return sorted(found, key=lambda record: (record.dead_at, record.side, record.row_id))

    def row(self, side: str, row_id: int) -> DeadLetterRecord | None:
        """One row, dead or resolved, by its side and id (a letter id ``<side>:<row>``)."""
        database = self.databases.get(side)
        if database is None:
            return None
        table = database.messaging.dead_letters
        found = self._select(side, select(table).where(table.c.id == row_id))
        return found[0] if found else None

    def message_ids(self) -> set[str]:
        ids: set[str] = set()
        for database in self.databases.values():
            table = database.messaging.dead_letters
            with database.engine.connect() as connection:
                ids.update(connection.scalars(select(table.c.message_id).distinct()))
        return ids

    def resolve(self, record: DeadLetterRecord, outcome: str, operator: str, replayed_body: str | None = None) -> bool:
        """Mark a dead row replayed, edited or purged; False when someone resolved it meanwhile."""
        database = self.databases[record.side]
        with database.engine.begin() as connection:
            return _resolve(connection, database, record, outcome, operator, replayed_body)

    def supersede(self, record: DeadLetterRecord, error: BaseException, operator: str) -> None:
        """The letter stays dead for a new reason: a new row with it, the old one marked superseded.

        The new row keeps the old one's ``copy_digest``: the broker copy it stands for is the same.
        """
        database = self.databases[record.side]
        table = database.messaging.dead_letters
        with database.engine.begin() as connection:
            if not _resolve(connection, database, record, Outcome.SUPERSEDED, operator, None):
                return
            connection.execute(
                table.insert(),
                dead_letter_row(  # each value fitted to its column, as when the death was first recorded
                    table,
                    message_id=record.message_id,
                    queue_name=record.queue_name,
                    actor_name=record.actor_name,
                    contract=record.contract,
                    correlation_id=record.correlation_id,
                    error=error,
                    traceback=f"refused on replay by {operator}: {type(error).__name__}: {describe_error(error)}",
                    attempts=record.attempts,
                    body=record.body,
                    copy_digest=record.copy_digest,
                ),
            )

    def _select(self, side: str, statement: Any) -> list[DeadLetterRecord]:
        with self.databases[side].engine.connect() as connection:
            return [_record(side, row) for row in connection.execute(statement).mappings()]


def _resolve(
    connection: Connection, database: SideDatabase, record: DeadLetterRecord, outcome: str, operator: str, body: str | None
) -> bool:
    table = database.messaging.dead_letters
    done = connection.execute(
        update(table)
        .where(table.c.id == record.row_id, table.c.outcome.is_(None))
        .values(outcome=outcome, resolved_at=datetime.now(UTC), resolved_by=operator[:128], replayed_body=body)
    )
    return done.rowcount == 1


def _record(side: str, row: Any) -> DeadLetterRecord:
    fields = {name: row[name] for name in DeadLetterRecord.__dataclass_fields__ if name not in ("side", "row_id")}
    fields["dead_at"] = _aware(fields["dead_at"])
    fields["resolved_at"] = _aware(fields["resolved_at"])
    return DeadLetterRecord(side=side, row_id=row["id"], **fields)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; everything we store is UTC.
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_exists(side: str, url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise LedgerUnavailable(
            f"no {side} database at {parsed.render_as_string(hide_password=True)}: set DUALWRITE_DATA_DIR "
            f"to the folder of the embedded SQLite files, or DUALWRITE_{side.upper()}_DB_URL"
        )

