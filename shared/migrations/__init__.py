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
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from shared.side_database import SideDatabase

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and Mako under it) costs a worker a third of a second to import: a worker only checks
# where its database is (``require_head``), which needs neither; ``upgrade`` imports it.

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


def config(database: SideDatabase, connection: Connection | None = None) -> "Config":
    """The Alembic configuration of a side, built in code."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / "versions" / database.side))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["metadata"] = database.metadata
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


_REVISION = re.compile(r"""^(down_revision|revision)\b[^=]*=\s*(?:None|['"]([^'"]+)['"])""", re.MULTILINE)


@cache
def head(side: str) -> str:
    """The last revision of the side's history: the one no other revision follows.

    Read from the revision files' ``revision`` and ``down_revision`` lines, as Alembic reads them
    (a test checks the two agree), without importing Alembic. Each side's history is one line of
    revisions: a fork (two heads) or none is an error in the tree, refused here."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in sorted((HERE / "versions" / side).glob("*.py")):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if name == "revision" else followed).add(value)
    heads = revisions - followed
    if len(heads) != 1:
        raise RuntimeError(f"the {side} migrations must end in one revision, found {sorted(heads) or 'none'}")
    return heads.pop()


def current(connection: Connection) -> str | None:
    """The revision the database is at (Alembic's ``alembic_version`` table), None when it has none."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(f"the database is at several revisions at once: {sorted(found)}")
    return found[0] if found else None


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
        from alembic import command

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
