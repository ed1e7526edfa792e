"""``one_of``: a key list as one parameter, alike on SQLite (JSON) and PostgreSQL (an array)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
)

from shared.sql_lists import ValueList, one_of
from tests.integration.engines import BACKENDS, engine_with

metadata = MetaData()
reports = Table(
    "one_of_reports",
    metadata,
    Column("report_id", String(30), primary_key=True),
    Column("lines", Integer, nullable=False),
)
QUERY = (
    select(reports.c.report_id)
    .where(
        one_of(reports.c.report_id, bindparam("b_ids", type_=ValueList())),
        one_of(reports.c.lines, bindparam("b_lines", type_=ValueList(Integer()))),
    )
    .order_by(reports.c.report_id)
)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for engine in engine_with(request, tmp_path, metadata):
        with engine.begin() as connection:
            connection.execute(reports.insert(), [
                {"report_id": "R-1", "lines": 1}, {"report_id": "R-2", "lines": 2}, {"report_id": "it's \"R-3\"", "lines": 3},
            ])
        yield engine


@pytest.mark.parametrize(
    ("ids", "lines", "found"),
    [
        (["R-1", "R-2", "nope"], [1, 2, 3], ["R-1", "R-2"]),
        (["it's \"R-3\"", "R-1"], [3], ["it's \"R-3\""]),
        ([], [1], []),
        (["R-1"], [], []),
    ],
)
def test_one_of_finds_exactly_the_listed_keys(engine: Engine, ids: list[str], lines: list[int], found: list[str]) -> None:
    with engine.connect() as connection:
        assert list(connection.scalars(QUERY, {"b_ids": ids, "b_lines": lines})) == found
