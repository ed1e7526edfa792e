"""Wires finance's handlers to its queues."""

from __future__ import annotations

from contracts.envelope import Side
from contracts.expense_categories import CREATE_EXPENSE_CATEGORIES, ENABLE_EXPENSE_ON_SHARED_CATEGORY
from contracts.queues import FINANCE_COMMANDS, table_map
from contracts.transaction_categories import MSDYN_TRANSACTIONCATEGORIES
from shared.consumer import Endpoint
from shared.side import SideSpec
from workers.finance import handlers
from workers.finance.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            FINANCE_COMMANDS,
            {
                ENABLE_EXPENSE_ON_SHARED_CATEGORY.name: handlers.enable_expense_on_shared_category,
                CREATE_EXPENSE_CATEGORIES.name: handlers.create_expense_categories,
            },
        ),
        Endpoint(
            table_map(MSDYN_TRANSACTIONCATEGORIES.name).inbound,
            {MSDYN_TRANSACTIONCATEGORIES.name: handlers.create_shared_categories},
        ),
    ]


SPEC = SideSpec(side=Side.FINANCE, metadata=metadata, messaging=messaging, endpoints=endpoints)
