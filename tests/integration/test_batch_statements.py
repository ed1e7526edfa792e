"""The batch statements every repository writes with, alike on SQLite and PostgreSQL.

On PostgreSQL each is one statement fed by an array per column (``shared.array_statements``);
on SQLite an executemany. Both must give the same rows, the same counts and the same refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    exc,
    select,
)

from shared.database import insert_ignoring_duplicates, insert_rows, update_rows, upsert
from shared.sql_types import Money
from tests.integration.engines import BACKENDS, engine_with

metadata = MetaData()
lines = Table(
    "batch_lines",
    metadata,
    Column("report_id", String(30), primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("amount", Money),
    Column("date", Date),
    Column("note", String(40)),
    Column("posted_at", DateTime(timezone=True)),
)

WHEN = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with(request, tmp_path, metadata)


def _rows(engine: Engine) -> list[tuple]:
    """The table's rows in key order; SQLite gives back its UTC times without their zone."""
    with engine.connect() as connection:
        rows = connection.execute(select(lines).order_by(lines.c.report_id, lines.c.line_number))
        return [(*row[:5], row[5] and row[5].replace(tzinfo=UTC)) for row in rows]


def _line(report: str, number: int, amount: str, note: str | None = None) -> dict:
    return {"report_id": report, "line_number": number, "amount": Decimal(amount), "date": date(2026, 11, 2),
            "note": note, "posted_at": None}


def test_insert_then_update_by_a_composite_key(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, lines, [_line("R1", 1, "10.50"), _line("R1", 2, "0.05", "taxi"), _line("R2", 1, "7")])
        update_rows(
            connection,
            lines,
            [
                {"report_id": "R1", "line_number": 2, "note": "taxi, night", "posted_at": WHEN},
                {"report_id": "R2", "line_number": 1, "note": None, "posted_at": WHEN},
            ],
            key=("report_id", "line_number"),
        )

    assert _rows(engine) == [
        ("R1", 1, Decimal("10.50"), date(2026, 11, 2), None, None),
        ("R1", 2, Decimal("0.05"), date(2026, 11, 2), "taxi, night", WHEN),
        ("R2", 1, Decimal("7.00"), date(2026, 11, 2), None, WHEN),
    ]


def test_text_travels_exactly_whatever_it_holds(engine: Engine) -> None:
    notes = ['say "hi"', "back\\slash", "{braces}, commas", "NULL", "", "café ✓", None]
    with engine.begin() as connection:
        insert_rows(connection, lines, [_line("R1", number, "1", note) for number, note in enumerate(notes)])

    assert [row[4] for row in _rows(engine)] == notes


def test_insert_ignoring_duplicates_counts_only_new_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        assert insert_ignoring_duplicates(connection, lines, [_line("R1", 1, "1"), _line("R1", 2, "2")]) == 2
    with engine.begin() as connection:
        assert insert_ignoring_duplicates(connection, lines, [_line("R1", 2, "99"), _line("R1", 3, "3")]) == 1

    assert [(r[1], r[2]) for r in _rows(engine)] == [(1, Decimal("1.00")), (2, Decimal("2.00")), (3, Decimal("3.00"))]


def test_a_batch_inserted_ignoring_duplicates_counts_only_new_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        assert insert_ignoring_duplicates(connection, lines, [_line("R1", n, "1") for n in (1, 2)]) == 2
    with engine.begin() as connection:
        assert insert_ignoring_duplicates(connection, lines, [_line("R1", n, "9") for n in range(1, 7)]) == 4

    assert [(r[1], r[2]) for r in _rows(engine)] == [(1, Decimal("1.00")), (2, Decimal("1.00"))] + [
        (n, Decimal("9.00")) for n in range(3, 7)
    ]


def test_upsert_updates_the_named_columns_of_existing_keys(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, lines, [_line("R1", 1, "1", "first")])
        upsert(connection, lines, [_line("R1", 1, "5", "second"), _line("R1", 2, "6", "new")],
               key=("report_id", "line_number"), update=("amount",))

    assert [(r[1], r[2], r[4]) for r in _rows(engine)] == [(1, Decimal("5.00"), "first"), (2, Decimal("6.00"), "new")]


def test_a_key_repeated_in_one_batch_ends_as_applying_the_rows_one_by_one(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, lines, [_line("R1", 1, "1", "kept")])
        # Upsert: R1/1 exists, R1/2 is new; each is met twice, the later amount wins, the note stays the first's
        upsert(connection, lines, [_line("R1", 1, "2", "x"), _line("R1", 2, "3", "first"), _line("R1", 1, "4", "y"),
                                   _line("R1", 2, "5", "second")], key=("report_id", "line_number"), update=("amount",))
        update_rows(connection, lines, [{"report_id": "R1", "line_number": 2, "note": "a"},
                                        {"report_id": "R1", "line_number": 2, "note": "b"}], key=("report_id", "line_number"))

    assert [(r[1], r[2], r[4]) for r in _rows(engine)] == [(1, Decimal("4.00"), "kept"), (2, Decimal("5.00"), "b")]


@pytest.mark.parametrize("rows", [1, 2, 8], ids=["one row", "a few rows", "a batch"])
def test_an_amount_with_too_many_decimals_is_refused_and_nothing_written(engine: Engine, rows: int) -> None:
    # A few rows go as SQLAlchemy's statement, a batch as arrays (shared.database.FEW_ROWS): both refuse
    batch = [_line("R1", number, "1.00") for number in range(1, rows)] + [_line("R1", rows, "0.005")]
    with pytest.raises(exc.StatementError, match="0.005 has more than 2 decimals"):
        with engine.begin() as connection:
            insert_rows(connection, lines, batch)

    assert _rows(engine) == []


def test_update_rows_needs_its_key_and_a_column_to_set(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(ValueError, match="need the key"):
        update_rows(connection, lines, [{"report_id": "R1", "line_number": 1}], key=("report_id", "line_number"))
