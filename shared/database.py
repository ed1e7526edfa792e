"""SQLAlchemy engines per side, and the batch statements every repository needs.

SQLite (the embedded default) and PostgreSQL behave alike here: both speak
``INSERT ... ON CONFLICT``, and SQLite transactions start with ``BEGIN IMMEDIATE`` so two
threads never deadlock upgrading a read lock to a write lock. On PostgreSQL a batch of rows is
one statement fed by an array per column (:mod:`shared.array_statements`); on SQLite, an
executemany of statements built once per table.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from shared import array_statements


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``: psycopg 3 for PostgreSQL, a tuned connection for SQLite files."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {}
    if parsed.drivername == "postgresql+psycopg":
        # Server-side $1 placeholders: psycopg's default cursor re-parses, on every execution, each
        # statement with more than 50 parameters (every multi-row INSERT of a batch), which cost
        # more client CPU than the rest of the insert. A raw cursor sends the statement as it is.
        options = {"paramstyle": "numeric_dollar", "connect_args": {"cursor_factory": psycopg.RawCursor}}
        if "connect_timeout" not in parsed.query:
            # libpq waits for ever by default: a host that drops packets would hold a thread (a
            # consumer, the outbox sweeper, a health check) until the kernel gives up, minutes later.
            options["connect_args"]["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    engine = create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, future=True, **options)
    _ping_idle_connections(engine)
    return engine


#: The longest a new PostgreSQL connection may take (unless the URL says ``?connect_timeout=``).
CONNECT_TIMEOUT_SECONDS = 10


#: A pooled connection idle this long is pinged before use (see ``_ping_idle_connections``).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use when it sat idle for ``PING_AFTER_IDLE_SECONDS``.

    Without a ping, a connection the server dropped (a restart, ``DROP DATABASE ... WITH (FORCE)``)
    fails the next statement, which one-shot commands, unlike messages, do not retry.
    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip for every unit of work.
    A connection in constant use was just shown alive by its last statement, so only one that
    rested is pinged. A dead one is replaced (``DisconnectionError`` makes the pool connect again);
    a drop in the second after a use is still met by the statement failing, which invalidates the
    pool, and a message is retried.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except psycopg.Error as error:
            raise exc.DisconnectionError(f"pooled connection dropped by the server: {error}") from error


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _dialect_insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"dialect {dialect!r} is not supported")


# SQLAlchemy's statements (SQLite's, and PostgreSQL's for a few rows) are built once per table and
# reused: building one (and its cache key) on every call cost a busy worker more CPU than sending it.


@functools.lru_cache(maxsize=1024)
def _insert_ignoring_duplicates(dialect: str, table: Table) -> Any:
    # Count what RETURNING gives back: an executemany's rowcount is -1 on psycopg (PostgreSQL),
    # which would make every first delivery look like a duplicate.
    return _dialect_insert(dialect, table).on_conflict_do_nothing().returning(*table.primary_key.columns)


@functools.lru_cache(maxsize=1024)
def _upsert(dialect: str, table: Table, key: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    statement = _dialect_insert(dialect, table)
    if not columns:
        return statement.on_conflict_do_nothing(index_elements=list(key))
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={column: statement.excluded[column] for column in columns}
    )


#: Up to this many rows, an insert goes as SQLAlchemy's statement: one row (the inbox's, every
#: message) costs less that way than as arrays, which win from a handful of rows on.
FEW_ROWS = 3


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert every row, in one statement (an array per column) on PostgreSQL."""
    if not rows:
        return
    if connection.dialect.name == "postgresql" and len(rows) > FEW_ROWS:
        array_statements.insert(connection, table, rows)
    else:
        connection.execute(table.insert(), list(rows))


def insert_ignoring_duplicates(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert the rows whose keys are new; returns how many were inserted."""
    return len(inserted_keys(connection, table, rows))


def inserted_keys(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Insert the rows whose primary keys are new, in one statement; the primary keys inserted."""
    if not rows:
        return []
    if connection.dialect.name == "postgresql" and len(rows) > FEW_ROWS:
        return array_statements.inserted_keys(connection, table, rows)
    statement = _insert_ignoring_duplicates(connection.dialect.name, table)
    return [tuple(row) for row in connection.execute(statement, list(rows)).all()]


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Iterable[str],
    update: Iterable[str] | None = None,
) -> None:
    """Insert the rows, or update the named columns of rows whose key already exists, in one statement."""
    if not rows:
        return
    key = tuple(key)
    columns = tuple(update) if update is not None else tuple(c for c in rows[0] if c not in key)
    if connection.dialect.name == "postgresql":
        array_statements.upsert(connection, table, _as_applied_one_by_one(rows, key, columns), key, columns)
    else:
        connection.execute(_upsert(connection.dialect.name, table, key, columns), list(rows))


def update_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: Iterable[str]) -> None:
    """Set each row's other columns on the table row matching its ``key`` columns (one statement on PostgreSQL)."""
    if not rows:
        return
    key = tuple(key)
    if any(name not in rows[0] for name in key) or len(key) == len(rows[0]):
        raise ValueError(f"update of {table.name}: rows need the key {key} and at least one other column")
    if connection.dialect.name == "postgresql":
        others = tuple(name for name in rows[0] if name not in key)
        array_statements.update(connection, table, _as_applied_one_by_one(rows, key, others), key)
        return
    statement = _update_by_key(table, key, tuple(name for name in rows[0] if name not in key))
    connection.execute(statement, [{f"b_{name}": value for name, value in row.items()} for row in rows])


def _as_applied_one_by_one(
    rows: Sequence[Mapping[str, Any]], key: tuple[str, ...], updated: tuple[str, ...]
) -> Sequence[Mapping[str, Any]]:
    """The rows, with those repeating a key merged as applying them one after the other would leave it.

    PostgreSQL refuses an ``INSERT ... ON CONFLICT DO UPDATE`` that meets one key twice, and an
    ``UPDATE ... FROM`` with two rows for one key applies either; row by row, the later row's
    ``updated`` columns win over the earlier's, which is what the merged row holds.
    """
    # Each row's key (its value, or a tuple of them for a key of several columns), read in C: a
    # generator per row cost more than the check it serves, on every batch written.
    keys = list(map(itemgetter(*key), rows))
    if len(set(keys)) == len(keys):
        return rows
    merged: dict[Any, dict[str, Any]] = {}
    for row_key, row in zip(keys, rows, strict=True):
        if row_key in merged:
            merged[row_key].update({name: row[name] for name in updated})
        else:
            merged[row_key] = dict(row)
    return list(merged.values())


@functools.lru_cache(maxsize=1024)
def _update_by_key(table: Table, key: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    return (
        table.update()
        .where(*(table.c[name] == bindparam(f"b_{name}") for name in key))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )


def supports_skip_locked(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def as_row(record: Any) -> dict[str, Any]:
    """A domain record (a dataclass, or a NamedTuple) as a table row: enum members become their plain values.

    Drivers disagree on enums (psycopg writes a member's *name*), so none ever reaches one.
    """
    if isinstance(record, tuple):
        # A NamedTuple, as records made per row of a batch are: its row built in C, its values
        # looked at one by one only when one is not plain.
        if _PLAIN.issuperset(map(type, record)):
            return dict(zip(record._fields, record))
        return {name: value.value if isinstance(value, Enum) else value for name, value in zip(record._fields, record)}
    row = {}
    for name in _field_names(type(record)):
        value = getattr(record, name)
        if type(value) not in _PLAIN:
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, (list, tuple, dict)) or dataclasses.is_dataclass(value):
                # Nested values: dataclasses.asdict copies them deeply. Flat records (every table row)
                # skip it: its deep copy of each Decimal cost more than the insert of the row itself.
                return {k: v.value if isinstance(v, Enum) else v for k, v in dataclasses.asdict(record).items()}
        row[name] = value
    return row


_PLAIN = frozenset({str, int, float, bool, Decimal, type(None), datetime.date, datetime.datetime})


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(kind))
