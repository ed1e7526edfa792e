"""Ids held in another case, looked up in one statement per batch, alike on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from tests.integration.engines import BACKENDS, engine_with
from workers.finance import tables
from workers.finance.store.projects import projects_in_another_case
from workers.finance.store.reports import reports_held_elsewhere, reports_in_another_case


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with(request, tmp_path, tables.metadata)


@pytest.fixture
def held(engine: Engine) -> Engine:
    """Project PRJ-US-100 of USPM; reports R-1 of USPM and R-2 of DEMF."""
    with engine.begin() as connection:
        connection.execute(tables.projects.insert(), [
            {"project_id": "PRJ-US-100", "legal_entity": "USPM", "name": "Rollout", "project_manager": "maria",
             "billable": True, "status": "active"},
        ])
        connection.execute(tables.expense_reports.insert(), [
            {"legal_entity": "USPM", "report_id": "R-1", "worker": "alice", "status": "submitted"},
            {"legal_entity": "DEMF", "report_id": "R-2", "worker": "lena", "status": "submitted"},
        ])
    return engine


def statements(engine: Engine) -> list[str]:
    executed: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: executed.append(args[2]))
    return executed


def queries(executed: list[str]) -> list[str]:
    return [statement for statement in executed if statement.lstrip().upper().startswith("SELECT")]


def test_an_id_held_in_another_case_is_found_and_one_held_as_sent_is_not(held: Engine) -> None:
    executed = statements(held)
    with held.connect() as connection:
        found = projects_in_another_case(connection, ["prj-us-100", "PRJ-US-100", "Prj-Us-100", "PRJ-NEW"])

    assert found == {"prj-us-100": "PRJ-US-100", "Prj-Us-100": "PRJ-US-100"}
    assert len(queries(executed)) == 1  # the whole batch in one statement


def test_ids_unique_per_company_are_compared_within_the_company(held: Engine) -> None:
    with held.connect() as connection:
        assert reports_in_another_case(connection, "USPM", ["r-1", "R-1", "r-2"]) == {"r-1": "R-1"}
        assert reports_in_another_case(connection, "DEMF", ["r-1", "r-2"]) == {"r-2": "R-2"}


def test_a_report_a_company_does_not_hold_is_found_in_another_company_or_case(held: Engine) -> None:
    executed = statements(held)
    with held.connect() as connection:
        found = reports_held_elsewhere(connection, "USPM", ["R-2", "r-1", "R-9", "R-1"])

    assert found == {"R-2": ("DEMF", "R-2"), "r-1": ("USPM", "R-1")}
    assert len(queries(executed)) == 1
