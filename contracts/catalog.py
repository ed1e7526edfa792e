"""Every contract of the system, and where upstream publishers send each command."""

from __future__ import annotations

from contracts.actuals import MSDYN_ACTUALPOSTINGS, MSDYN_ACTUALS, RUN_SYSTEM_JOBS
from contracts.expense_categories import (
    CREATE_EXPENSE_CATEGORIES,
    ENABLE_EXPENSE_ON_SHARED_CATEGORY,
    MSDYN_EXPENSECATEGORIES,
)
from contracts.expense_reports import (
    APPROVE_EXPENSE_REPORTS,
    CREATE_EXPENSE_REPORTS,
    POST_EXPENSE_REPORTS,
    SUBMIT_EXPENSE_REPORTS,
)
from contracts.expenses import MSDYN_EXPENSES
from contracts.projects import (
    CREATE_EXPENSE_ESTIMATES,
    CREATE_PROJECTS,
    MSDYN_PROJECTS,
    SET_PROJECT_STATUS,
    UPDATE_PROJECTS,
)
from contracts.initial_sync import INITIAL_SYNC_DATAVERSE_PAGE, INITIAL_SYNC_FINANCE_PAGE, INITIAL_SYNC_REPORT
from contracts.map_failures import MAP_FAILURE_REPORT
from contracts.queues import (
    BRIDGE_INITIAL_SYNC,
    BRIDGE_MAP_FAILURES,
    DATAVERSE_COMMANDS,
    DATAVERSE_SYSTEM_JOBS,
    FINANCE_COMMANDS,
    Queue,
    table_map,
)
from contracts.registry import Contract, ContractRegistry, Kind, build_registry
from contracts.transaction_categories import (
    CREATE_TRANSACTION_CATEGORIES,
    MSDYN_TRANSACTIONCATEGORIES,
)

CONTRACTS: tuple[Contract, ...] = (
    CREATE_TRANSACTION_CATEGORIES,
    MSDYN_TRANSACTIONCATEGORIES,
    ENABLE_EXPENSE_ON_SHARED_CATEGORY,
    CREATE_EXPENSE_CATEGORIES,
    MSDYN_EXPENSECATEGORIES,
    CREATE_PROJECTS,
    SET_PROJECT_STATUS,
    MSDYN_PROJECTS,
    UPDATE_PROJECTS,
    CREATE_EXPENSE_ESTIMATES,
    CREATE_EXPENSE_REPORTS,
    SUBMIT_EXPENSE_REPORTS,
    APPROVE_EXPENSE_REPORTS,
    POST_EXPENSE_REPORTS,
    MSDYN_EXPENSES,
    RUN_SYSTEM_JOBS,
    MSDYN_ACTUALS,
    MSDYN_ACTUALPOSTINGS,
    INITIAL_SYNC_FINANCE_PAGE,
    INITIAL_SYNC_DATAVERSE_PAGE,
    INITIAL_SYNC_REPORT,
    MAP_FAILURE_REPORT,
)

#: Which command queue each upstream command goes to.
COMMAND_QUEUES: dict[str, Queue] = {
    CREATE_TRANSACTION_CATEGORIES.name: DATAVERSE_COMMANDS,
    CREATE_PROJECTS.name: DATAVERSE_COMMANDS,
    CREATE_EXPENSE_ESTIMATES.name: DATAVERSE_COMMANDS,
    SET_PROJECT_STATUS.name: DATAVERSE_COMMANDS,
    RUN_SYSTEM_JOBS.name: DATAVERSE_SYSTEM_JOBS,
    ENABLE_EXPENSE_ON_SHARED_CATEGORY.name: FINANCE_COMMANDS,
    CREATE_EXPENSE_CATEGORIES.name: FINANCE_COMMANDS,
    CREATE_EXPENSE_REPORTS.name: FINANCE_COMMANDS,
    SUBMIT_EXPENSE_REPORTS.name: FINANCE_COMMANDS,
    APPROVE_EXPENSE_REPORTS.name: FINANCE_COMMANDS,
    POST_EXPENSE_REPORTS.name: FINANCE_COMMANDS,
    UPDATE_PROJECTS.name: FINANCE_COMMANDS,
    INITIAL_SYNC_FINANCE_PAGE.name: FINANCE_COMMANDS,
    INITIAL_SYNC_DATAVERSE_PAGE.name: DATAVERSE_COMMANDS,
    INITIAL_SYNC_REPORT.name: BRIDGE_INITIAL_SYNC,
    MAP_FAILURE_REPORT.name: BRIDGE_MAP_FAILURES,
}


def default_registry() -> ContractRegistry:
    return build_registry(CONTRACTS)


def publish_queue(contract: Contract) -> Queue:
    """Where a publisher sends a message of this contract: a command queue, or a map's first leg."""
    if contract.kind is Kind.COMMAND:
        return COMMAND_QUEUES[contract.name]
    return table_map(contract.name).outbound
