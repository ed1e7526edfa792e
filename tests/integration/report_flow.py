"""An expense report driven the way ``dualwrite demo`` drives it, for the operator-tool tests.

The reference data and reports are the demo's (``workers/demo/expense_steps.py``): USPM in USD,
R-US-001 by alice with two lines on PRJ-US-100 (345.00 USD hotel, 500.00 EUR airfare at 1.0920,
so 891.00 USD of project cost) and one line on no project. Each step is published once the
previous one is applied, and checked before the next.
"""

from __future__ import annotations

import subprocess
import uuid

from sqlalchemy import select

from contracts.envelope import Side
from contracts.expense_categories import MSDYN_EXPENSECATEGORIES, ExpenseCategoriesV1
from contracts.queues import table_map
from shared.settings import Settings
from shared.unit_of_work import UnitOfWork
from tests.in_process_cli import operator_environment, run_dualwrite
from tests.integration.support import (
    FINANCE,
    System,
    given_expense_categories,
    given_expense_enabled,
    given_transaction_categories,
    load_setup_of,
)
from workers.demo.expense_steps import APPROVERS, REPORTS, SETUP_FILE
from workers.finance import tables as fin
from workers.finance.bootstrap import import_policy
from workers.finance.expense_report_handlers import report_correlation
from workers.finance.integration import IntegrationRun, run_integration
from workers.finance.setup_document import read_setup_document

CATEGORIES = {"HOTEL": "hotel", "AIRFARE": "airline"}


def given_the_demo_reference_data(system: System) -> None:
    """The set-up file (finance's, its companies in Dataverse too), HOTEL and AIRFARE usable in USPM, and
    project PRJ-US-100 managed by maria."""
    load_setup_of(system.runtime, read_setup_document(SETUP_FILE))
    given_transaction_categories(system, *CATEGORIES)
    given_expense_enabled(system, CATEGORIES)
    given_expense_categories(system, "USPM", CATEGORIES)
    system.publish(
        "create_projects",
        [{"project_id": "PRJ-US-100", "name": "Contoso rollout", "project_manager": "maria", "billable": True}],
        legal_entity="USPM",
        correlation_id="projects:setup",
    )
    system.settle()
    assert report_statuses(system) == {}
    assert system.all_dead_letters() == {side.value: [] for side in system.runtime.sides}


def report_statuses(system: System) -> dict[str, str]:
    table = fin.expense_reports
    return dict(system.rows(FINANCE, select(table.c.report_id, table.c.status)))


def step(system: System, contract: str, report_id: str, **row: str) -> None:
    legal_entity, _, _ = REPORTS[report_id]
    system.publish(contract, [{"report_id": report_id, **row}], correlation_id=report_correlation(legal_entity, report_id), legal_entity=legal_entity)
    system.settle()


def post_report(system: System, report_id: str) -> None:
    """Create, submit, approve and post one report; Dataverse then approves its lines."""
    approve_report(system, report_id)
    step(system, "post_expense_reports", report_id)
    assert report_statuses(system)[report_id] == "posted"


def approve_report(system: System, report_id: str) -> None:
    """Create, submit and approve one report, by each of the demo's approvers."""
    legal_entity, worker, lines = REPORTS[report_id]
    system.publish(
        "create_expense_reports",
        [{"report_id": report_id, "worker": worker, "lines": lines}],
        correlation_id=report_correlation(legal_entity, report_id),
        legal_entity=legal_entity,
    )
    system.settle()
    step(system, "submit_expense_reports", report_id)
    for approver in APPROVERS[report_id]:
        step(system, "approve_expense_reports", report_id, approver=approver)
    assert report_statuses(system)[report_id] == "approved"


def import_from_staging(system: System) -> IntegrationRun:
    """Finance's Import from staging and journal posting, run now as an operator would; results sent and applied."""
    finance = system.runtime.side(Side.FINANCE)
    run = run_integration(finance.database, finance.relay, import_policy(system.runtime.settings))
    system.settle()
    return run


def commit_unsent_expense_categories(system: System, correlation_id: str) -> str:
    """A finance outbox message committed and not yet relayed, as a crash right after commit leaves one."""
    with UnitOfWork(system.database(FINANCE), Side.FINANCE) as uow:
        envelope = uow.emit(
            table_map(MSDYN_EXPENSECATEGORIES.name).outbound,
            MSDYN_EXPENSECATEGORIES.name,
            MSDYN_EXPENSECATEGORIES.latest,
            ExpenseCategoriesV1.model_validate(
                {"rows": [{"expense_category": "TAXI", "name": "Taxi", "transaction_category": "TAXI", "expense_type": "transport"}]}
            ),
            correlation_id=correlation_id,
            legal_entity="USPM",
        )
        uow.commit()
    return str(envelope.message_id)


def dualwrite(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``dualwrite`` command as an operator would, on the settings' databases (in this
    process: tests/in_process_cli.py says why that proves the same)."""
    return run_dualwrite(args, operator_environment(settings))


def unique_correlation(prefix: str) -> str:
    return f"{prefix}:{uuid.uuid4().hex[:8]}"
