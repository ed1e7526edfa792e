"""What Dataverse exports for an initial sync: the transaction categories and projects it masters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.initial_sync import INITIAL_SYNC_DATAVERSE_PAGE
from contracts.projects import MSDYN_PROJECTS
from contracts.queues import DATAVERSE_COMMANDS
from contracts.transaction_categories import MSDYN_TRANSACTIONCATEGORIES
from workers.dataverse.tables import projects, transaction_categories
from workers.initial_sync_export import MapExport, page_exporter


def transaction_category_row(record: Mapping[str, Any]) -> dict[str, Any]:
    row = {"category": record["category"], "name": record["name"]}
    if record["description"] is not None:
        row["description"] = record["description"]
    return row


def project_row(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "project_id": record["project_id"],
        "name": record["name"],
        "project_manager": record["project_manager"],
        "billable": record["billable"],
        "status": record["status"],
        # msdyn_projects is two-way: each row carries its version, which the bridge compares with
        # what it carried live (workers/bridge/row_versions.py): an older copy is not carried.
        "row_version": record["row_version"],
        "row_origin": record["row_origin"],
    }


EXPORTS: dict[str, MapExport] = {
    MSDYN_TRANSACTIONCATEGORIES.name: MapExport(
        table_map=MSDYN_TRANSACTIONCATEGORIES.name,
        contract=MSDYN_TRANSACTIONCATEGORIES,
        table=transaction_categories,
        key=("category",),
        to_row=transaction_category_row,
    ),
    MSDYN_PROJECTS.name: MapExport(
        table_map=MSDYN_PROJECTS.name,
        contract=MSDYN_PROJECTS,
        table=projects,
        key=("legal_entity", "project_id"),
        to_row=project_row,
        legal_entity_column="legal_entity",
        # v2: each row with its version (row_version, row_origin), so the bridge decides a synced
        # copy by the same version as live changes (workers/bridge/row_versions.py).
        version=2,
    ),
}

export_page = page_exporter(EXPORTS, DATAVERSE_COMMANDS, INITIAL_SYNC_DATAVERSE_PAGE)
