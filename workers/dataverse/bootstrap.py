"""Wires Dataverse's handlers to its queues, each behind the check that its message's company is Dataverse's."""

from __future__ import annotations

from contracts.actuals import MSDYN_ACTUALPOSTINGS, RUN_SYSTEM_JOBS
from contracts.envelope import Side
from contracts.expense_categories import MSDYN_EXPENSECATEGORIES
from contracts.expenses import MSDYN_EXPENSES
from contracts.initial_sync import INITIAL_SYNC_DATAVERSE_PAGE
from contracts.projects import CREATE_EXPENSE_ESTIMATES, CREATE_PROJECTS, MSDYN_PROJECTS, SET_PROJECT_STATUS
from contracts.queues import DATAVERSE_COMMANDS, DATAVERSE_SYSTEM_JOBS, table_map
from contracts.transaction_categories import CREATE_TRANSACTION_CATEGORIES
from shared.consumer import Endpoint
from shared.side import SideSpec
from workers.dataverse import expense_handlers, exports, handlers, project_handlers
from workers.dataverse.companies import for_known_companies
from workers.dataverse.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    """A company-scoped message for a company Dataverse does not know is refused before its handler runs."""
    return [Endpoint(endpoint.queue, for_known_companies(endpoint.handlers)) for endpoint in _endpoints()]


def _endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            DATAVERSE_COMMANDS,
            {
                CREATE_TRANSACTION_CATEGORIES.name: handlers.create_transaction_categories,
                CREATE_PROJECTS.name: handlers.create_projects,
                SET_PROJECT_STATUS.name: handlers.set_project_status,
                CREATE_EXPENSE_ESTIMATES.name: handlers.create_expense_estimates,
                INITIAL_SYNC_DATAVERSE_PAGE.name: exports.export_page,
            },
        ),
        Endpoint(
            table_map(MSDYN_EXPENSECATEGORIES.name).inbound,
            {MSDYN_EXPENSECATEGORIES.name: handlers.apply_expense_categories},
        ),
        Endpoint(
            table_map(MSDYN_EXPENSES.name).inbound,
            {MSDYN_EXPENSES.name: expense_handlers.apply_expenses},
        ),
        Endpoint(
            table_map(MSDYN_PROJECTS.name).reverse_inbound,
            {MSDYN_PROJECTS.name: project_handlers.apply_project_changes},
        ),
        Endpoint(DATAVERSE_SYSTEM_JOBS, {RUN_SYSTEM_JOBS.name: expense_handlers.run_system_jobs}),
        Endpoint(
            table_map(MSDYN_ACTUALPOSTINGS.name).inbound,
            {MSDYN_ACTUALPOSTINGS.name: expense_handlers.apply_actual_postings},
        ),
    ]


SPEC = SideSpec(side=Side.DATAVERSE, metadata=metadata, messaging=messaging, endpoints=endpoints)
