"""Schema migrations of each side's database (Alembic), run in code: no alembic.ini for users.

One migration environment (``env.py`` here) and one history per side, under
``versions/<side>/``. Each side owns its database, so each keeps its own ``alembic_version``
table. ``dualwrite db upgrade`` runs :func:`upgrade`; ``dualwrite worker`` calls
:func:`require_head` and refuses to start on a database that is behind.

A database made before migrations existed (tables created straight from the metadata, no
``alembic_version``) is adopted by :func:`upgrade`: stamped at the revision its tables match,
then upgraded from there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from shared.side_database import SideDatabase

HERE = Path(__file__).resolve().parent
# Alembic says "Context impl ..." on every connection; our commands report what they did themselves.
logging.getLogger("alembic").setLevel(logging.WARNING)
#: The revision before the dead_letters outcome columns; a pre-migration database without them is at it.
INITIAL = "0001_initial"
UPGRADE_COMMAND = "dualwrite db upgrade"


class SchemaBehind(RuntimeError):
    """A side's database is not at the head revision of its migrations."""

    def __init__(self, side: str, current: str | None, head: str) -> None:
        self.side, self.current, self.head = side, current, head
        at = f"revision {current}" if current else "no revision (empty, or made before migrations)"
        super().__init__(
            f"the {side} database is behind its schema: it is at {at}, the code needs {head}; "
            f"run `{UPGRADE_COMMAND} --side {side}` (or `{UPGRADE_COMMAND}` for all three) first"
        )


@dataclass(frozen=True)
class Revisions:
    side: str
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    def as_dict(self) -> dict[str, object]:
        return {"side": self.side, "current": self.current, "head": self.head, "at_head": self.at_head}


def config(database: SideDatabase, connection: Connection | None = None) -> Config:
    """The Alembic configuration of a side, built in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions" / database.side))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["metadata"] = database.metadata
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head(side: str) -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions" / side))
    cfg.set_main_option("path_separator", "os")
    found = ScriptDirectory.from_config(cfg).get_current_head()
    assert found is not None, f"no migrations for {side}"
    return found


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def revisions(database: SideDatabase) -> Revisions:
    """Where the side's database is, and where its migrations end (connects; may raise DBAPIError)."""
    with database.engine.connect() as connection:
        return Revisions(database.side, current(connection), head(database.side))


def require_head(database: SideDatabase) -> Revisions:
    """Raise :class:`SchemaBehind` unless the database is at head."""
    found = revisions(database)
    if not found.at_head:
        raise SchemaBehind(found.side, found.current, found.head)
    return found


def upgrade(database: SideDatabase) -> tuple[str | None, str]:
    """Create or upgrade the side's schema to head; (revision before, revision after). Idempotent."""
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two processes upgrading at once (two `db upgrade`, or setup beside it) take turns.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('dualwrite-migrations'))"))
        before = current(connection)
        cfg = config(database, connection)
        if before is None:
            adopted = _pre_migration_revision(connection, database)
            if adopted is not None:
                command.stamp(cfg, adopted)
        command.upgrade(cfg, "head")
        return before, current(connection) or ""


def _pre_migration_revision(connection: Connection, database: SideDatabase) -> str | None:
    """The revision matching tables created from the metadata before migrations; None when empty."""
    tables = set(inspect(connection).get_table_names())
    if "inbox" not in tables:
        return None
    dead_letters = {column["name"] for column in inspect(connection).get_columns("dead_letters")}
    return INITIAL if "outcome" not in dead_letters else head(database.side)
