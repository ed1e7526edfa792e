"""Input that can never succeed is refused for good, at the first attempt, with nothing written.

Each scenario runs on the embedded default and on the real Redis and PostgreSQL (the ``system``
fixture): an id differing only in case from a held one is never merged into it or created beside
it (not even by a transaction that commits one while a batch is being applied), a company finance
or Dataverse does not know is refused, and approving another company's report is a broken rule,
not a message that arrived early.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, table_map
from shared.side_database import SideDatabase
from shared.waiting import wait_until
from tests.integration.report_flow import given_the_demo_reference_data, report_statuses, step
from tests.integration.support import (
    BRIDGE,
    DATAVERSE,
    FINANCE,
    System,
    companies_of_the_tests,
    given_transaction_categories,
)
from workers.bridge.activity import activity_log
from workers.dataverse import repository as dataverse_repository
from workers.dataverse import tables as dataverse
from workers.dataverse.domain.projects import Project
from workers.demo.expense_steps import REPORTS
from workers.finance import tables as finance
from workers.finance.expense_report_handlers import report_correlation
from workers.reference_data import load_setup


def projects(system: System, side) -> list[tuple]:  # noqa: ANN001
    table = (finance if side is FINANCE else dataverse).projects
    columns = (table.c.project_id, table.c.legal_entity, table.c.name, table.c.status, table.c.row_version)
    return [tuple(row) for row in system.rows(side, select(*columns).order_by(table.c.project_id))]


def the_only_dead_letter(system: System, side, message_id) -> object:  # noqa: ANN001
    """The one dead letter of the run: on ``side``, of this message, permanent at its first attempt."""
    others = {name: letters for name, letters in system.all_dead_letters().items() if name != side.value and letters}
    assert others == {}, others
    [letter] = system.dead_letters(side)
    assert letter.message_id == str(message_id)
    assert (letter.error_kind, letter.error_type, letter.attempts) == ("permanent", "BusinessRuleViolation", 1)
    return letter


def test_a_project_id_in_another_case_is_refused_and_the_existing_project_is_unchanged_on_both_sides(system: System) -> None:
    # Given project PRJ-US-100 of USPM, held by Dataverse and by finance
    given_the_demo_reference_data(system)
    before = projects(system, DATAVERSE)
    assert [row[:3] for row in before] == [("PRJ-US-100", "USPM", "Contoso rollout")]
    assert projects(system, FINANCE) == before

    # When an upstream system creates prj-us-100, under another name
    command = system.publish(
        "create_projects",
        [{"project_id": "prj-us-100", "name": "Renamed by mistake", "project_manager": "maria", "billable": False}],
        legal_entity="USPM",
    )
    system.settle()

    # Then Dataverse refused it for good, naming both ids, and sent nothing on
    letter = the_only_dead_letter(system, DATAVERSE, command.message_id)
    assert letter.queue_name == DATAVERSE_COMMANDS.name
    assert "project 'prj-us-100' differs only in case from the existing project 'PRJ-US-100'" in letter.error
    assert system.applied(DATAVERSE, command.message_id) == 0
    assert system.outbox_caused_by(DATAVERSE, command.message_id) == []

    # And the existing project is unchanged on both sides, with no near-duplicate beside it
    assert projects(system, DATAVERSE) == before
    assert projects(system, FINANCE) == before


def test_an_expense_category_in_another_case_is_refused_by_finance_and_nothing_reaches_dataverse(system: System) -> None:
    # Given HOTEL, an expense category of USPM in finance and in Dataverse
    given_the_demo_reference_data(system)
    held = system.dataverse_expense_categories()

    # When finance is asked to create hotel for USPM
    command = system.publish(
        "create_expense_categories",
        [{"expense_category": "hotel", "name": "Hotel, again", "shared_category": "HOTEL"}],
        legal_entity="USPM",
    )
    system.settle()

    # Then finance refused it for good, naming both codes; neither side holds hotel
    letter = the_only_dead_letter(system, FINANCE, command.message_id)
    assert "expense category 'hotel' differs only in case from the existing expense category 'HOTEL' of company USPM" in letter.error
    table = finance.expense_categories
    assert sorted(system.rows(FINANCE, select(table.c.legal_entity, table.c.expense_category, table.c.name))) == [
        ("USPM", "AIRFARE", "Airfare"), ("USPM", "HOTEL", "Hotel"),
    ]
    assert system.dataverse_expense_categories() == held
    assert system.outbox_caused_by(FINANCE, command.message_id) == []


def test_a_company_finance_does_not_know_is_refused_with_nothing_written(system: System) -> None:
    # Given finance's companies USPM and DEMF (the demo set-up), and HOTEL enabled for expense
    given_the_demo_reference_data(system)

    # When finance is asked to create an expense category for ZZ01, a company it was never set up for
    command = system.publish(
        "create_expense_categories",
        [{"expense_category": "TAXI", "name": "Taxi", "shared_category": "HOTEL"}],
        legal_entity="ZZ01",
    )
    system.settle()

    # Then it is dead at the first attempt with the reason, and nothing was written on either side
    letter = the_only_dead_letter(system, FINANCE, command.message_id)
    assert letter.queue_name == FINANCE_COMMANDS.name
    assert "legal entity 'ZZ01' is not a company of finance" in letter.error
    assert system.applied(FINANCE, command.message_id) == 0
    assert system.outbox_caused_by(FINANCE, command.message_id) == []
    assert system.count(FINANCE, finance.expense_categories, finance.expense_categories.c.legal_entity == "ZZ01") == 0
    assert [row for row in system.dataverse_expense_categories() if row[0] == "ZZ01"] == []


def test_approving_another_companys_report_is_refused_at_the_first_attempt(system: System) -> None:
    # Given report R-US-001 of USPM, created and submitted
    given_the_demo_reference_data(system)
    legal_entity, worker, lines = REPORTS["R-US-001"]
    assert legal_entity == "USPM"
    system.publish("create_expense_reports", [{"report_id": "R-US-001", "worker": worker, "lines": lines}],
                   correlation_id=report_correlation(legal_entity, "R-US-001"), legal_entity=legal_entity)
    system.settle()
    step(system, "submit_expense_reports", "R-US-001")
    assert report_statuses(system) == {"R-US-001": "submitted"}

    # When DEMF, a company finance knows, approves it
    command = system.publish("approve_expense_reports", [{"report_id": "R-US-001", "approver": "maria"}], legal_entity="DEMF")
    system.settle()

    # Then the approval is dead at its first attempt (never retried as if it came early), naming the owner
    letter = the_only_dead_letter(system, FINANCE, command.message_id)
    assert "report 'R-US-001' is a report of company USPM, not of DEMF" in letter.error

    # And the report is as it was: submitted, no line approved
    assert report_statuses(system) == {"R-US-001": "submitted"}
    table = finance.expense_lines
    assert {row.approved_by for row in system.rows(FINANCE, select(table.c.approved_by))} == {None}


def test_a_report_id_in_another_case_is_refused_at_the_first_attempt(system: System) -> None:
    # Given report R-US-002 of USPM, created and submitted
    given_the_demo_reference_data(system)
    legal_entity, worker, lines = REPORTS["R-US-002"]
    system.publish("create_expense_reports", [{"report_id": "R-US-002", "worker": worker, "lines": lines}],
                   legal_entity=legal_entity)
    system.settle()
    step(system, "submit_expense_reports", "R-US-002")

    # When its project manager approves r-us-002
    command = system.publish("approve_expense_reports", [{"report_id": "r-us-002", "approver": "maria"}], legal_entity="USPM")
    system.settle()

    # Then the approval is refused for good: r-us-002 can never be created beside R-US-002
    letter = the_only_dead_letter(system, FINANCE, command.message_id)
    assert "report 'r-us-002' does not exist in company USPM; report 'R-US-002' does" in letter.error
    assert report_statuses(system) == {"R-US-002": "submitted"}


def test_a_transaction_category_in_another_case_is_refused_by_dataverse(system: System) -> None:
    # Given the transaction category TAXI, carried to finance
    given_transaction_categories(system, "TAXI")

    # When an upstream system creates taxi
    command = system.publish("create_transaction_categories", [{"category": "taxi", "name": "Taxi again"}])
    system.settle()

    # Then Dataverse refused it, and finance holds TAXI's shared categories only
    letter = the_only_dead_letter(system, DATAVERSE, command.message_id)
    assert "transaction category 'taxi' differs only in case from the existing transaction category 'TAXI'" in letter.error
    assert list(system.shared_categories()) == ["TAXI"]
    table = dataverse.transaction_categories
    assert system.rows(DATAVERSE, select(table.c.category, table.c.name)) == [("TAXI", "Taxi")]


def test_a_company_dataverse_does_not_know_is_refused_with_nothing_written(system: System) -> None:
    # Given Dataverse's companies USPM, DEMF and USMF (the set-up loaded on both sides)
    assert system.count(DATAVERSE, dataverse.legal_entities) == 3

    # When an upstream system creates a project for ZZ01, a company Dataverse was never set up for
    command = system.publish(
        "create_projects",
        [{"project_id": "PRJ-ZZ-1", "name": "Nowhere", "project_manager": "maria", "billable": True}],
        legal_entity="ZZ01",
    )
    system.settle()

    # Then Dataverse refused it at the first attempt with the reason finance gives, and wrote nothing
    letter = the_only_dead_letter(system, DATAVERSE, command.message_id)
    assert letter.queue_name == DATAVERSE_COMMANDS.name
    assert "legal entity 'ZZ01' is not a company of dataverse (its companies are those loaded with `dualwrite setup`)" in letter.error
    assert system.applied(DATAVERSE, command.message_id) == 0
    assert system.outbox_caused_by(DATAVERSE, command.message_id) == []
    assert projects(system, DATAVERSE) == projects(system, FINANCE) == []

    # And nothing reached finance, so no table map failed
    assert map_failures(system, "msdyn_projects") == []


def test_rows_of_a_company_only_finance_knows_are_refused_by_dataverse_at_the_first_attempt(system: System) -> None:
    # Given finance set up for ZZ02 as for USPM, which Dataverse was never set up for
    given_the_demo_reference_data(system)
    tests = companies_of_the_tests()
    zz02 = tests.model_copy(update={"legal_entities": [tests.legal_entities[0].model_copy(update={"legal_entity": "ZZ02"})]})
    load_setup(zz02, {FINANCE: system.database(FINANCE).engine})

    # When finance creates an expense category for ZZ02, which msdyn_expensecategories carries to Dataverse
    command = system.publish(
        "create_expense_categories",
        [{"expense_category": "TAXI", "name": "Taxi", "shared_category": "HOTEL"}],
        legal_entity="ZZ02",
    )
    system.settle()

    # Then Dataverse refused the map's rows at the first attempt, naming the company, and holds nothing of ZZ02
    [letter] = system.dead_letters(DATAVERSE)
    assert (letter.queue_name, letter.error_type, letter.attempts) == (
        table_map("msdyn_expensecategories").inbound.name, "BusinessRuleViolation", 1,
    )
    assert "legal entity 'ZZ02' is not a company of dataverse" in letter.error
    assert [row for row in system.dataverse_expense_categories() if row[0] == "ZZ02"] == []
    assert system.dead_letters(FINANCE) == system.dead_letters(BRIDGE) == []

    # And the bridge logged it as a failure of the map, refused by Dataverse (the sides disagree on their companies)
    [failed] = map_failures(system, "msdyn_expensecategories")
    assert (failed.message_id, failed.detail["refused_by"]) == (letter.message_id, "dataverse")
    assert "legal entity 'ZZ02' is not a company of dataverse" in failed.detail["error"]


def test_a_case_variant_committed_while_dataverse_applies_a_batch_is_refused_at_the_first_attempt(system: System, backend: Any) -> None:
    # Given a transaction that has written project PRJ-RACE of USPM and not committed yet
    database = system.database(DATAVERSE)
    with database.engine.connect() as connection:
        transaction = connection.begin()
        dataverse_repository.save_projects(connection, [
            Project(legal_entity="USPM", project_id="PRJ-RACE", name="First", project_manager="maria", billable=True),
        ])

        # When an upstream system creates prj-race meanwhile
        command = system.publish(
            "create_projects",
            [{"project_id": "prj-race", "name": "Second", "project_manager": "maria", "billable": True}],
            legal_entity="USPM",
        )
        if backend.real_services:
            # On PostgreSQL its check passed (PRJ-RACE is not committed) and its insert now waits on the
            # unique index on lower(project_id); on SQLite it waits for the write lock, before its check
            wait_until(lambda: inserts_waiting_on_a_lock(database, "projects") == 1, timeout=20,
                       what="Dataverse's insert of prj-race waiting on the index")
        transaction.commit()
    system.settle()

    # Then the batch is refused at its first attempt, as the check refuses it, naming both ids
    letter = the_only_dead_letter(system, DATAVERSE, command.message_id)
    assert "create_projects refused, nothing written: project 'prj-race' differs only in case from the existing project 'PRJ-RACE'" in letter.error

    # And only the first transaction's project exists; nothing was sent to finance
    assert [row[:3] for row in projects(system, DATAVERSE)] == [("PRJ-RACE", "USPM", "First")]
    assert system.outbox_caused_by(DATAVERSE, command.message_id) == []


def map_failures(system: System, table_map_name: str) -> list[Any]:
    with system.database(BRIDGE).engine.connect() as connection:
        return activity_log(connection, table_map_name, limit=100, kinds=("failed",), oldest_first=True)


def inserts_waiting_on_a_lock(database: SideDatabase, table: str) -> int:
    """PostgreSQL sessions of ``database`` whose insert into ``table`` waits on another transaction's lock."""
    with database.engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE :insert"
            ),
            {"insert": f"INSERT INTO {table} %"},
        )
