"""Ids held in another case, looked up in one statement per batch, alike on SQLite and PostgreSQL.

The unique indexes on lower(id) refuse what the check, which reads only what is committed, cannot
see: a case variant committed by another transaction meanwhile. The check's queries use them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, text
from sqlalchemy.exc import IntegrityError

from shared.case_variants import CaseVariants, violated_index
from shared.errors import BusinessRuleViolation
from shared.waiting import wait_until
from tests.integration.engines import BACKENDS, engine_with
from workers.dataverse import repository as dataverse_repository
from workers.dataverse import tables as dataverse_tables
from workers.finance import tables
from workers.finance.domain.expense_reports import FinanceProject
from workers.finance.store import categories as category_store
from workers.finance.store import reports as report_store
from workers.finance.store.projects import projects_in_another_case
from workers.finance.store.reports import reports_held_elsewhere, reports_in_another_case


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with(request, tmp_path, tables.metadata)


@pytest.fixture(params=BACKENDS)
def dataverse_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with(request, tmp_path, dataverse_tables.metadata)


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


# -- the unique indexes on lower(id) --------------------------------------------------------------

Rows = tuple[Any, str, list[dict[str, Any]], dict[str, Any], dict[str, Any]]
FINANCE_ROWS: dict[str, Rows] = {
    # (table, its id column, rows held, a case variant the index refuses, a row differing in case it allows)
    "shared categories, per transaction class": (tables.shared_categories, "category", [
        {"category": "HOTEL", "transaction_class": "expense", "name": "Hotel"},
    ], {"category": "hotel", "transaction_class": "expense", "name": "Hotel"},
       {"category": "hotel", "transaction_class": "fee", "name": "Hotel"}),
    "expense categories, per company": (tables.expense_categories, "expense_category", [
        {"legal_entity": "USPM", "expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL", "expense_type": "hotel"},
    ], {"legal_entity": "USPM", "expense_category": "Hotel", "name": "Hotel", "shared_category": "HOTEL", "expense_type": "hotel"},
       {"legal_entity": "DEMF", "expense_category": "hotel", "name": "Hotel", "shared_category": "HOTEL", "expense_type": "hotel"}),
    "projects, across companies": (tables.projects, "project_id", [
        {"project_id": "PRJ-1", "legal_entity": "USPM", "name": "One", "project_manager": "maria", "billable": True, "status": "active"},
    ], {"project_id": "prj-1", "legal_entity": "DEMF", "name": "One", "project_manager": "jonas", "billable": True, "status": "active"},
       {"project_id": "prj-2", "legal_entity": "USPM", "name": "Two", "project_manager": "maria", "billable": True, "status": "active"}),
    "expense reports, per company": (tables.expense_reports, "report_id", [
        {"legal_entity": "USPM", "report_id": "R-1", "worker": "alice", "status": "draft"},
    ], {"legal_entity": "USPM", "report_id": "r-1", "worker": "alice", "status": "draft"},
       {"legal_entity": "DEMF", "report_id": "r-1", "worker": "lena", "status": "draft"}),
}
DATAVERSE_ROWS: dict[str, Rows] = {
    "transaction categories": (dataverse_tables.transaction_categories, "category", [
        {"category": "HOTEL", "name": "Hotel"},
    ], {"category": "Hotel", "name": "Hotel"}, {"category": "HOTELS", "name": "Hotels"}),
    "expense categories, per company": (dataverse_tables.expense_categories, "expense_category", [
        {"legal_entity": "USPM", "expense_category": "HOTEL", "name": "Hotel", "transaction_category": "HOTEL", "expense_type": "hotel"},
    ], {"legal_entity": "USPM", "expense_category": "hotel", "name": "Hotel", "transaction_category": "HOTEL", "expense_type": "hotel"},
       {"legal_entity": "DEMF", "expense_category": "hotel", "name": "Hotel", "transaction_category": "HOTEL", "expense_type": "hotel"}),
    "projects, across companies": (dataverse_tables.projects, "project_id", [
        {"project_id": "PRJ-1", "legal_entity": "USPM", "name": "One", "project_manager": "maria", "billable": True},
    ], {"project_id": "Prj-1", "legal_entity": "DEMF", "name": "One", "project_manager": "jonas", "billable": True},
       {"project_id": "PRJ-1-B", "legal_entity": "USPM", "name": "One B", "project_manager": "maria", "billable": True}),
}


def refused_and_allowed(
    engine: Engine, table: Any, id_column: str, held: list[dict[str, Any]], variant: dict[str, Any], allowed: dict[str, Any]
) -> None:
    """Inserted straight, past any check: the variant is refused by the index, the other row is not."""
    with engine.begin() as connection:
        connection.execute(insert(table), held)
    with pytest.raises(IntegrityError) as refused, engine.begin() as connection:
        connection.execute(insert(table), [variant])
    assert violated_index(refused.value) == f"uq_{table.name}_lower_{id_column}"
    with engine.begin() as connection:
        connection.execute(insert(table), [allowed])
        assert len(connection.execute(select(table)).all()) == len(held) + 1


@pytest.mark.parametrize("kind", FINANCE_ROWS)
def test_finance_indexes_refuse_an_id_differing_only_in_case_within_its_scope(engine: Engine, kind: str) -> None:
    refused_and_allowed(engine, *FINANCE_ROWS[kind])


@pytest.mark.parametrize("kind", DATAVERSE_ROWS)
def test_dataverse_indexes_refuse_an_id_differing_only_in_case_within_its_scope(dataverse_engine: Engine, kind: str) -> None:
    refused_and_allowed(dataverse_engine, *DATAVERSE_ROWS[kind])


def project(project_id: str, name: str) -> FinanceProject:
    return FinanceProject(legal_entity="USPM", project_id=project_id, name=name, project_manager="maria", billable=True,
                          status="active")  # type: ignore[arg-type]


def project_variants(project_id: str) -> CaseVariants:
    """As msdyn_projects checks and guards finance's projects."""
    return CaseVariants("msdyn_projects", "project", [project_id], lambda connection: projects_in_another_case(connection, [project_id]))


def test_a_case_variant_written_past_the_check_is_refused_as_the_check_refuses_it(held: Engine) -> None:
    # Given PRJ-US-100 held; when prj-us-100 is saved without the check (as a batch that passed it
    # before PRJ-US-100 was committed), the index refuses it and the guard says why, naming both ids
    with pytest.raises(BusinessRuleViolation) as refused, held.begin() as connection:
        with project_variants("prj-us-100").guard(connection):
            report_store.save_projects(connection, [project("prj-us-100", "Renamed")])

    assert str(refused.value).startswith(
        "msdyn_projects refused, nothing written: project 'prj-us-100' differs only in case from the existing project 'PRJ-US-100'"
    )
    assert isinstance(refused.value.__context__, IntegrityError)
    with held.connect() as connection:
        assert connection.execute(select(tables.projects.c.project_id, tables.projects.c.name)).all() == [("PRJ-US-100", "Rollout")]


def test_a_write_the_index_does_not_refuse_passes_the_guard(held: Engine) -> None:
    with held.begin() as connection, project_variants("PRJ-US-100").guard(connection):
        report_store.save_projects(connection, [project("PRJ-US-100", "Renamed")])  # the same id: an update

    with held.connect() as connection:
        assert connection.execute(select(tables.projects.c.project_id, tables.projects.c.name)).all() == [("PRJ-US-100", "Renamed")]


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_two_transactions_cannot_each_create_a_case_variant_on_postgresql(engine: Engine) -> None:
    # Given a transaction that has saved project PRJ-9 and not committed
    with engine.connect() as first:
        first_transaction = first.begin()
        report_store.save_projects(first, [project("PRJ-9", "First")])

        # When a second transaction checks prj-9 (nothing committed: it passes) and saves it
        outcome: dict[str, BaseException] = {}
        second = threading.Thread(target=capturing(outcome, lambda: check_and_save(engine, "prj-9")))
        second.start()
        # Then its insert waits on the index until the first commits
        wait_until(lambda: inserts_waiting(engine) == 1, timeout=10, what="the second insert waiting on the first")
        first_transaction.commit()
        second.join(timeout=10)

    # And then the index refuses it, and the guard refuses the batch for good, naming both ids
    assert not second.is_alive()
    error = outcome.get("error")
    assert isinstance(error, BusinessRuleViolation), error
    assert "project 'prj-9' differs only in case from the existing project 'PRJ-9'" in str(error)
    with engine.connect() as connection:
        assert connection.execute(select(tables.projects.c.project_id, tables.projects.c.name)).all() == [("PRJ-9", "First")]


def check_and_save(engine: Engine, project_id: str) -> None:
    variants = project_variants(project_id)
    with engine.begin() as connection:
        variants.refuse_held(connection)
        with variants.guard(connection):
            report_store.save_projects(connection, [project(project_id, "Second")])


def capturing(outcome: dict[str, BaseException], work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 (handed to the test's thread)
            outcome["error"] = error

    return run


def inserts_waiting(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO projects %'"
        ))


# -- the check's queries use the indexes -----------------------------------------------------------

COMPANIES = ("USPM", "DEMF", "GBPS")
MANY = 3000


def explained(engine: Engine, look_up: Callable[[Any], Any]) -> list[str]:
    """The plan of every query ``look_up`` runs (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite)."""
    plans: list[str] = []
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "

    def capture(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            cursor.execute(explain + statement, parameters)
            plans.append(" ".join(str(row[-1]) for row in cursor.fetchall()))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as connection:
            look_up(connection)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return plans


@pytest.fixture
def many_finance(engine: Engine) -> Engine:
    """Thousands of ids of each kind in three companies, the statistics up to date."""
    with engine.begin() as connection:
        connection.execute(insert(tables.shared_categories), [
            {"category": f"C-{n}", "transaction_class": cls, "name": "c"} for n in range(MANY // 4) for cls in ("expense", "fee", "hour", "item")
        ])
        connection.execute(insert(tables.expense_categories), [
            {"legal_entity": COMPANIES[n % 3], "expense_category": f"E-{n}", "name": "e", "shared_category": "C-1", "expense_type": "hotel"}
            for n in range(MANY)
        ])
        connection.execute(insert(tables.projects), [
            {"project_id": f"P-{n}", "legal_entity": COMPANIES[n % 3], "name": "p", "project_manager": "m", "billable": True, "status": "active"}
            for n in range(MANY)
        ])
        connection.execute(insert(tables.expense_reports), [
            {"legal_entity": COMPANIES[n % 3], "report_id": f"R-{n}", "worker": "w", "status": "draft"} for n in range(MANY)
        ])
        connection.execute(text("ANALYZE"))
    return engine


#: Each look-up of the check, with the index it must use; ``scoped``: narrowed to one company.
FINANCE_LOOK_UPS: dict[str, tuple[Callable[[Any], Any], str, bool]] = {
    "shared categories": (lambda c: category_store.shared_categories_in_another_case(c, ["c-1", "C-2"]),
                          "uq_shared_categories_lower_category", False),
    "expense categories": (lambda c: category_store.expense_categories_in_another_case(c, "DEMF", ["e-1", "E-4"]),
                           "uq_expense_categories_lower_expense_category", True),
    "projects": (lambda c: projects_in_another_case(c, ["p-1", "P-2"]), "uq_projects_lower_project_id", False),
    "reports": (lambda c: reports_in_another_case(c, "DEMF", ["r-1", "R-4"]), "uq_expense_reports_lower_report_id", True),
    "reports in any company": (lambda c: reports_held_elsewhere(c, "USPM", ["r-1", "R-2"]), "uq_expense_reports_lower_report_id", False),
}


@pytest.mark.parametrize("look_up", FINANCE_LOOK_UPS)
def test_the_checks_look_ups_use_the_unique_index_on_lower_id(many_finance: Engine, look_up: str) -> None:
    call, index, scoped = FINANCE_LOOK_UPS[look_up]

    [plan] = explained(many_finance, call)

    if scoped and many_finance.dialect.name == "sqlite":
        # SQLite, without statistics, may prefer the company's ids by primary key: a search all the same
        assert plan.startswith("SEARCH ") and " USING " in plan, plan
    else:
        assert index in plan, plan


@pytest.mark.parametrize("dataverse_engine", ["postgresql"], indirect=True)
def test_dataverse_checks_look_ups_use_the_unique_index_on_lower_id(dataverse_engine: Engine) -> None:
    engine = dataverse_engine
    with engine.begin() as connection:
        connection.execute(insert(dataverse_tables.transaction_categories), [{"category": f"C-{n}", "name": "c"} for n in range(MANY)])
        connection.execute(insert(dataverse_tables.expense_categories), [
            {"legal_entity": COMPANIES[n % 3], "expense_category": f"E-{n}", "name": "e", "transaction_category": "C-1", "expense_type": "hotel"}
            for n in range(MANY)
        ])
        connection.execute(insert(dataverse_tables.projects), [
            {"project_id": f"P-{n}", "legal_entity": COMPANIES[n % 3], "name": "p", "project_manager": "m", "billable": True}
            for n in range(MANY)
        ])
        connection.execute(text("ANALYZE"))

    plans = explained(engine, lambda c: (
        dataverse_repository.transaction_categories_in_another_case(c, ["c-1"]),
        dataverse_repository.expense_categories_in_another_case(c, "DEMF", ["e-1"]),
        dataverse_repository.projects_in_another_case(c, ["p-1"]),
    ))

    assert len(plans) == 3
    for plan, index in zip(plans, ("uq_transaction_categories_lower_category", "uq_expense_categories_lower_expense_category",
                                   "uq_projects_lower_project_id")):
        assert index in plan, plan
