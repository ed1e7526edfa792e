"""Wires finance's handlers to its queues, and Import from staging to its timer."""

from __future__ import annotations

from contracts.actuals import MSDYN_ACTUALS
from contracts.envelope import Side
from contracts.expense_categories import CREATE_EXPENSE_CATEGORIES, ENABLE_EXPENSE_ON_SHARED_CATEGORY
from contracts.expense_reports import (
    APPROVE_EXPENSE_REPORTS,
    CREATE_EXPENSE_REPORTS,
    POST_EXPENSE_REPORTS,
    SUBMIT_EXPENSE_REPORTS,
)
from contracts.initial_sync import INITIAL_SYNC_FINANCE_PAGE
from contracts.projects import MSDYN_PROJECTS, UPDATE_PROJECTS
from contracts.queues import FINANCE_COMMANDS, table_map
from contracts.transaction_categories import MSDYN_TRANSACTIONCATEGORIES
from shared.consumer import Endpoint
from shared.periodic import PeriodicTask
from shared.settings import Settings
from shared.side import SideRuntime, SideSpec
from workers.finance import exports
from workers.finance import expense_report_handlers as reports
from workers.finance import handlers, project_handlers
from workers.finance.domain.integration_journal import Period
from workers.finance.integration import ImportPolicy, run_integration, stage_actuals
from workers.finance.metrics import EXPENSE_INTEGRATION_BALANCE
from workers.finance.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            FINANCE_COMMANDS,
            {
                ENABLE_EXPENSE_ON_SHARED_CATEGORY.name: handlers.enable_expense_on_shared_category,
                CREATE_EXPENSE_CATEGORIES.name: handlers.create_expense_categories,
                CREATE_EXPENSE_REPORTS.name: reports.create_expense_reports,
                SUBMIT_EXPENSE_REPORTS.name: reports.submit_expense_reports,
                APPROVE_EXPENSE_REPORTS.name: reports.approve_expense_reports,
                POST_EXPENSE_REPORTS.name: reports.post_expense_reports,
                UPDATE_PROJECTS.name: project_handlers.update_projects,
                INITIAL_SYNC_FINANCE_PAGE.name: exports.export_page,
            },
        ),
        Endpoint(
            table_map(MSDYN_TRANSACTIONCATEGORIES.name).inbound,
            {MSDYN_TRANSACTIONCATEGORIES.name: handlers.create_shared_categories},
        ),
        Endpoint(table_map(MSDYN_PROJECTS.name).inbound, {MSDYN_PROJECTS.name: project_handlers.apply_projects}),
        Endpoint(table_map(MSDYN_ACTUALS.name).inbound, {MSDYN_ACTUALS.name: stage_actuals}),
    ]


def import_policy(settings: Settings) -> ImportPolicy:
    return ImportPolicy(grouping=Period(settings.import_period), max_lines=settings.journal_max_lines)


def periodic(runtime: SideRuntime, settings: Settings) -> list[PeriodicTask]:
    policy = import_policy(settings)
    return [
        PeriodicTask(
            "finance-import-from-staging",
            settings.import_interval_seconds,
            lambda: run_integration(runtime.database, runtime.relay, policy),
        )
    ]


SPEC = SideSpec(
    side=Side.FINANCE,
    metadata=metadata,
    messaging=messaging,
    endpoints=endpoints,
    periodic=periodic,
    gauges=(EXPENSE_INTEGRATION_BALANCE,),
)
