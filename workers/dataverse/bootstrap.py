"""Wires Dataverse's handlers to its queues."""

from __future__ import annotations

from contracts.envelope import Side
from contracts.expense_categories import MSDYN_EXPENSECATEGORIES
from contracts.projects import CREATE_EXPENSE_ESTIMATES, CREATE_PROJECTS
from contracts.queues import DATAVERSE_COMMANDS, table_map
from contracts.transaction_categories import CREATE_TRANSACTION_CATEGORIES
from shared.consumer import Endpoint
from shared.side import SideSpec
from workers.dataverse import handlers
from workers.dataverse.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            DATAVERSE_COMMANDS,
            {
                CREATE_TRANSACTION_CATEGORIES.name: handlers.create_transaction_categories,
                CREATE_PROJECTS.name: handlers.create_projects,
                CREATE_EXPENSE_ESTIMATES.name: handlers.create_expense_estimates,
            },
        ),
        Endpoint(
            table_map(MSDYN_EXPENSECATEGORIES.name).inbound,
            {MSDYN_EXPENSECATEGORIES.name: handlers.apply_expense_categories},
        ),
    ]


SPEC = SideSpec(side=Side.DATAVERSE, metadata=metadata, messaging=messaging, endpoints=endpoints)
