"""What finance exports for an initial sync: the expense categories it masters (``msdyn_expensecategories``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.expense_categories import MSDYN_EXPENSECATEGORIES
from contracts.initial_sync import INITIAL_SYNC_FINANCE_PAGE
from contracts.queues import FINANCE_COMMANDS
from workers.finance.tables import expense_categories
from workers.initial_sync_export import MapExport, page_exporter


def expense_category_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """Finance's expense category as the map carries it: its shared category is Dataverse's transaction category."""
    return {
        "expense_category": record["expense_category"],
        "name": record["name"],
        "transaction_category": record["shared_category"],
        "expense_type": record["expense_type"],
    }


EXPORTS: dict[str, MapExport] = {
    MSDYN_EXPENSECATEGORIES.name: MapExport(
        table_map=MSDYN_EXPENSECATEGORIES.name,
        contract=MSDYN_EXPENSECATEGORIES,
        table=expense_categories,
        key=("legal_entity", "expense_category"),
        to_row=expense_category_row,
        legal_entity_column="legal_entity",
    ),
}

export_page = page_exporter(EXPORTS, FINANCE_COMMANDS, INITIAL_SYNC_FINANCE_PAGE)
