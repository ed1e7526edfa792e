"""Batch statements for PostgreSQL: one statement for any number of rows, each column one array.

An executemany sends the database a statement per row, and SQLAlchemy prepares every parameter
of every row in Python on the way. For the batches handlers write (a report's lines, a journal's
200 actuals, their ledger entries) that cost the workers more CPU than the database spent on the
rows. Here each column travels as one array parameter and ``unnest`` turns the arrays back into
rows, so a batch is one statement whatever its size::

    INSERT INTO ledger_entries (voucher, amount)
        SELECT * FROM unnest(CAST(CAST(:c0 AS TEXT) AS VARCHAR(60)[]), CAST(CAST(:c1 AS TEXT) AS NUMERIC(18, 2)[]))
    UPDATE journals AS t SET status = v.status FROM unnest(...) AS v(journal_id, status) WHERE t.journal_id = v.journal_id

Every value still passes its column's bind processor (``FixedPoint`` refuses an amount with more
decimals than its column), a whole column at a time where that is cheaper (see
:func:`_fixed_point_array`). The statements, and each column's encoder, are built once per
table and set of columns. SQLite keeps SQLAlchemy's executemany: see :mod:`shared.database`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation
from itertools import repeat
from operator import is_, itemgetter
from typing import Any

from sqlalchemy import Connection, Table, TextClause, exc, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from shared.sql_types import FixedPoint

Rows = Sequence[Mapping[str, Any]]


#: Turns one column's values into its array literal.
Encoder = Callable[[list[Any]], str]


@dataclass(frozen=True)
class _Columns:
    """The columns of one statement: their quoted names, encoders and ``unnest`` arguments."""

    names: tuple[str, ...]
    quoted: tuple[str, ...]
    encoders: tuple[Encoder, ...]
    #: ``CAST(CAST(:c0 AS TEXT) AS TYPE[]), ...``: each column's array literal, cast to its type
    arrays: str

    def parameters(self, statement: TextClause, rows: Rows) -> dict[str, str]:
        """Each column's values, through its bind processor, as one array literal (``c0``, ``c1``...)."""
        parameters = {}
        for index, (name, encode) in enumerate(zip(self.names, self.encoders, strict=True)):
            try:
                parameters[f"c{index}"] = encode(list(map(itemgetter(name), rows)))
            except (TypeError, ValueError) as error:
                # As SQLAlchemy reports a value its bind processor refuses in an executemany.
                raise exc.StatementError(f"column {name}: {error}", str(statement), None, error) from error
        return parameters


def _holds_null(values: list[Any]) -> bool:
    """Whether a value is None, by identity: ``None in values`` asks each Decimal ``== None`` (ten times slower)."""
    return any(map(is_, values, repeat(None)))


def _array_literal(values: list[Any]) -> str:
    """The array as PostgreSQL's text literal, ``{"a","b",NULL}``; the statement casts it to its type.

    Built here rather than left to the driver: psycopg adapts a list element by element in
    Python, at three times the cost. Elements are quoted, so only ``"`` and ``\\`` need escaping;
    the common case (no NULL, nothing to escape) is two joins in C.
    """
    if not values:
        return "{}"
    if not _holds_null(values):
        texts = list(map(str, values))
        plain = "".join(texts)
        if '"' not in plain and "\\" not in plain:
            return '{"' + '","'.join(texts) + '"}'
    return "{" + ",".join(
        "NULL" if value is None else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    ) + "}"


def _decimal_array(values: list[Decimal | None]) -> str:
    """Decimals as an array literal, ``{1.00,2.50,NULL}``: a Decimal's text needs no quotes."""
    if _holds_null(values):
        return "{" + ",".join("NULL" if value is None else str(value) for value in values) + "}"
    return "{" + ",".join(map(str, values)) + "}"


def _fixed_point_array(kind: FixedPoint, process: Callable[[Any], Decimal | None]) -> Encoder:
    """A ``FixedPoint`` column's encoder: its bind processor's rule, a whole column at a time in C.

    The processor (a Python call per value) cost more than the rest of the statement. A decimal
    context that traps ``Inexact`` quantizes a Decimal (or int) to the column's scale only when no
    digit is lost, which is exactly the processor's rule; it also traps a value wider than the
    column, and an infinity. A column where that does not go through (an amount to refuse, a
    string, a float, None, NaN) passes value by value through the processor instead, which
    refuses or converts each as it always has.
    """
    exact = Context(prec=kind.precision, traps=[Inexact, InvalidOperation])
    unit = Decimal(1).scaleb(-kind.scale)

    def quantized(values: list[Any]) -> list[Decimal] | None:
        try:
            result = list(map(exact.quantize, values, repeat(unit)))
        except (ArithmeticError, TypeError):
            return None
        return result if all(map(Decimal.is_finite, result)) else None

    def encode(values: list[Any]) -> str:
        exactly = quantized(values)
        return _decimal_array(exactly if exactly is not None else [process(value) for value in values])

    return encode


def _encoder(kind: TypeEngine[Any], dialect: Dialect) -> Encoder:
    """How a column of this type becomes an array literal, through its bind processor if it has one."""
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if isinstance(kind, FixedPoint):
        return _fixed_point_array(kind, process)
    if process is None:
        return _array_literal
    return lambda values: _array_literal([process(value) for value in values])


@functools.lru_cache(maxsize=1024)
def _columns(dialect: Dialect, table: Table, names: tuple[str, ...]) -> _Columns:
    quote = dialect.identifier_preparer.quote
    types = [table.c[name].type for name in names]
    return _Columns(
        names=names,
        quoted=tuple(quote(name) for name in names),
        encoders=tuple(_encoder(kind, dialect) for kind in types),
        arrays=", ".join(
            f"CAST(CAST(:c{index} AS TEXT) AS {kind.compile(dialect=dialect)}[])" for index, kind in enumerate(types)
        ),
    )


@functools.lru_cache(maxsize=1024)
def _insert(dialect: Dialect, table: Table, names: tuple[str, ...], conflict: str) -> tuple[_Columns, TextClause]:
    columns = _columns(dialect, table, names)
    statement = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(columns.quoted)}) "
        f"SELECT * FROM unnest({columns.arrays}){conflict}"
    )
    return columns, text(statement)


def insert(connection: Connection, table: Table, rows: Rows) -> None:
    """Insert every row."""
    columns, statement = _insert(connection.dialect, table, tuple(rows[0]), "")
    connection.execute(statement, columns.parameters(statement, rows))


def insert_ignoring_duplicates(connection: Connection, table: Table, rows: Rows) -> int:
    """Insert the rows whose primary keys are new; returns how many were inserted."""
    return len(inserted_keys(connection, table, rows))


def inserted_keys(connection: Connection, table: Table, rows: Rows) -> list[tuple[Any, ...]]:
    """Insert the rows whose primary keys are new; the primary keys inserted."""
    quote = connection.dialect.identifier_preparer.quote
    returning = ", ".join(quote(column.name) for column in table.primary_key.columns)
    columns, statement = _insert(
        connection.dialect, table, tuple(rows[0]), f" ON CONFLICT DO NOTHING RETURNING {returning}"
    )
    return [tuple(row) for row in connection.execute(statement, columns.parameters(statement, rows)).all()]


def upsert(connection: Connection, table: Table, rows: Rows, key: tuple[str, ...], update: tuple[str, ...]) -> None:
    """Insert the rows, or set the ``update`` columns of those whose ``key`` exists."""
    quote = connection.dialect.identifier_preparer.quote
    target = ", ".join(quote(name) for name in key)
    if update:
        assignments = ", ".join(f"{quote(name)} = EXCLUDED.{quote(name)}" for name in update)
        conflict = f" ON CONFLICT ({target}) DO UPDATE SET {assignments}"
    else:
        conflict = f" ON CONFLICT ({target}) DO NOTHING"
    columns, statement = _insert(connection.dialect, table, tuple(rows[0]), conflict)
    connection.execute(statement, columns.parameters(statement, rows))


@functools.lru_cache(maxsize=1024)
def _update(dialect: Dialect, table: Table, key: tuple[str, ...], names: tuple[str, ...]) -> tuple[_Columns, TextClause]:
    columns = _columns(dialect, table, names)
    quote = dialect.identifier_preparer.quote
    assignments = ", ".join(f"{quote(name)} = v.{quote(name)}" for name in names if name not in key)
    matches = " AND ".join(f"t.{quote(name)} = v.{quote(name)}" for name in key)
    statement = (
        f"UPDATE {dialect.identifier_preparer.format_table(table)} AS t SET {assignments} "
        f"FROM unnest({columns.arrays}) AS v({', '.join(columns.quoted)}) WHERE {matches}"
    )
    return columns, text(statement)


def update(connection: Connection, table: Table, rows: Rows, key: tuple[str, ...]) -> None:
    """Set the other columns of each row on the table row that matches its ``key`` columns."""
    columns, statement = _update(connection.dialect, table, key, tuple(rows[0]))
    connection.execute(statement, columns.parameters(statement, rows))
