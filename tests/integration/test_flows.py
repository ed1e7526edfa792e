"""The first flows end to end, through all three workers, on each backend.

Each test reads as a scenario: the state it starts from, what an upstream system or an operator
publishes, and the business result on the side that should hold it.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS, table_map
from tests.integration.support import (
    BRIDGE,
    DATAVERSE,
    FINANCE,
    FOUR_CLASSES,
    System,
    given_expense_categories,
    given_expense_enabled,
    given_project,
    given_transaction_categories,
)
from workers.dataverse import tables as dataverse
from workers.finance import tables as finance


def test_a_transaction_category_becomes_four_shared_categories_in_finance(system: System) -> None:
    # Given an empty system
    assert system.shared_categories() == {}

    # When Dataverse is asked to create two transaction categories
    command = system.publish(
        "create_transaction_categories",
        [
            {"category": "HOTEL", "name": "Hotel", "description": "Lodging on project travel"},
            {"category": "Airfare", "name": "Airfare"},  # kept exactly as sent
        ],
        correlation_id="transaction-categories:setup",
    )
    system.settle()

    # Then Dataverse holds both, and finance holds exactly four shared categories per category
    assert system.count(DATAVERSE, dataverse.transaction_categories) == 2
    assert system.shared_categories() == {"Airfare": FOUR_CLASSES, "HOTEL": FOUR_CLASSES}
    hotel = system.rows(
        FINANCE,
        select(finance.shared_categories.c.name, finance.shared_categories.c.description, finance.shared_categories.c.can_be_used_in_expense)
        .where(finance.shared_categories.c.category == "HOTEL"),
    )
    assert {tuple(row) for row in hotel} == {("Hotel", "Lodging on project travel", False)}

    # And the rows travelled the map msdyn_transactioncategories: Dataverse -> bridge -> finance
    carried = system.outbox_caused_by(DATAVERSE, command.message_id)
    assert [(row.queue_name, row.contract) for row in carried] == [
        (table_map("msdyn_transactioncategories").outbound.name, "msdyn_transactioncategories")
    ]
    assert system.applied(BRIDGE, carried[0].message_id) == 1
    delivered = system.inbox(FINANCE)
    assert [(row.queue_name, row.correlation_id, row.rows) for row in delivered] == [
        ("msdyn_transactioncategories.bridge-to-finance", "transaction-categories:setup", 2)
    ]
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_an_expense_category_reaches_dataverse_for_its_legal_entity_only(system: System) -> None:
    # Given HOTEL reached finance, and an operator enabled its Expense shared category for expense
    given_transaction_categories(system, "HOTEL")
    given_expense_enabled(system, {"HOTEL": "hotel"})

    # When finance creates the expense category HOTEL for USPM
    system.publish(
        "create_expense_categories",
        [{"expense_category": "HOTEL", "name": "Hotel stays", "shared_category": "HOTEL"}],
        legal_entity="USPM",
        correlation_id="expense-categories:USPM",
    )
    system.settle()

    # Then finance holds it for USPM, and Dataverse holds it for USPM and for no other company
    assert [tuple(r) for r in system.rows(FINANCE, select(finance.expense_categories))] == [
        ("USPM", "HOTEL", "Hotel stays", "HOTEL", "hotel")
    ]
    assert system.dataverse_expense_categories() == [("USPM", "HOTEL", "HOTEL", "hotel")]
    assert system.count(DATAVERSE, dataverse.expense_categories, dataverse.expense_categories.c.legal_entity == "DEMF") == 0
    arrived = system.inbox(DATAVERSE, system.database(DATAVERSE).messaging.inbox.c.contract == "msdyn_expensecategories")
    assert [(row.queue_name, row.legal_entity, row.correlation_id) for row in arrived] == [
        ("msdyn_expensecategories.bridge-to-dataverse", "USPM", "expense-categories:USPM")
    ]
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_an_expense_category_on_a_shared_category_not_enabled_for_expense_is_refused(system: System) -> None:
    # Given HOTEL reached finance, but nobody enabled it for expense
    given_transaction_categories(system, "HOTEL")

    # When finance is asked to create an expense category on it
    command = system.publish(
        "create_expense_categories",
        [{"expense_category": "HOTEL", "name": "Hotel", "shared_category": "HOTEL"}],
        legal_entity="USPM",
        correlation_id="expense-categories:USPM:early",
    )
    system.settle()

    # Then the command is dead with its reason, in finance's dead letters
    [letter] = system.dead_letters(FINANCE)
    assert letter.message_id == str(command.message_id)
    assert letter.queue_name == FINANCE_COMMANDS.name
    assert letter.contract == "create_expense_categories"
    assert letter.correlation_id == "expense-categories:USPM:early"
    assert (letter.error_kind, letter.error_type, letter.attempts) == ("permanent", "BusinessRuleViolation", 1)
    assert "not enabled for expense" in letter.error
    assert "'HOTEL'" in letter.error and "nothing written" in letter.error

    # And nothing was written or sent anywhere
    assert system.count(FINANCE, finance.expense_categories) == 0
    assert system.applied(FINANCE, command.message_id) == 0
    assert system.outbox(FINANCE) == []
    assert system.inbox(BRIDGE, system.database(BRIDGE).messaging.inbox.c.contract == "msdyn_expensecategories") == []
    assert system.count(DATAVERSE, dataverse.expense_categories) == 0
    assert system.shared_categories() == {"HOTEL": FOUR_CLASSES}


def test_an_estimate_line_naming_another_company_category_is_refused(system: System) -> None:
    # Given USPM has the expense category HOTEL, DEMF has RAIL, and each company has a project
    given_transaction_categories(system, "HOTEL", "RAIL")
    given_expense_enabled(system, {"HOTEL": "hotel", "RAIL": "transport"})
    given_expense_categories(system, "USPM", ["HOTEL"])
    given_expense_categories(system, "DEMF", ["RAIL"])
    given_project(system, "USPM", "PRJ-US-100")
    given_project(system, "DEMF", "PRJ-DE-200")

    # When a project manager estimates, on USPM's project, a line naming DEMF's category RAIL
    command = system.publish(
        "create_expense_estimates",
        [
            {"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
             "quantity": "3", "unit_cost": "120.00", "currency": "USD"},
            {"project_id": "PRJ-US-100", "line_number": 2, "expense_category": "RAIL", "date": "2026-12-02",
             "quantity": "2", "unit_cost": "89.90", "currency": "USD"},
        ],
        legal_entity="USPM",
        correlation_id="estimates:PRJ-US-100",
    )
    system.settle()

    # Then Dataverse refuses the whole batch with a reason naming the line, category and company
    [letter] = system.dead_letters(DATAVERSE)
    assert letter.message_id == str(command.message_id)
    assert letter.queue_name == DATAVERSE_COMMANDS.name
    assert (letter.error_kind, letter.error_type) == ("permanent", "BusinessRuleViolation")
    assert "rows.1" in letter.error
    assert "'RAIL' is not an expense category of company USPM" in letter.error
    assert "nothing written" in letter.error

    # And no estimate line was written, not even the valid one
    assert system.count(DATAVERSE, dataverse.expense_estimates) == 0
    assert system.applied(DATAVERSE, command.message_id) == 0


def test_a_v1_estimate_publisher_is_applied_as_v2(system: System) -> None:
    # Given USPM has the expense category HOTEL and the project PRJ-US-100
    given_transaction_categories(system, "HOTEL")
    given_expense_enabled(system, {"HOTEL": "hotel"})
    given_expense_categories(system, "USPM", ["HOTEL"])
    given_project(system, "USPM", "PRJ-US-100")

    # When an older publisher still sends version 1 (one total amount per line)
    command = system.publish(
        "create_expense_estimates",
        [{"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
          "amount": "450.00", "currency": "USD"}],
        legal_entity="USPM",
        version=1,
        correlation_id="estimates:PRJ-US-100:v1",
    )
    system.settle()

    # Then Dataverse applied it as version 2: one unit at that cost
    table = dataverse.expense_estimates
    [line] = system.rows(DATAVERSE, select(table))
    assert (line.legal_entity, line.project_id, line.line_number, line.expense_category) == ("USPM", "PRJ-US-100", 1, "HOTEL")
    assert (line.quantity, line.unit_cost, line.amount, line.currency) == (Decimal("1"), Decimal("450.00"), Decimal("450.00"), "USD")
    [received] = system.inbox(DATAVERSE, system.database(DATAVERSE).messaging.inbox.c.message_id == str(command.message_id))
    assert received.version == 1
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}
