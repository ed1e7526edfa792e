"""Finance's handlers of the two-way map msdyn_projects: Dataverse's rows in, finance's changes out.

A row applied from the bridge is never published again (that would be an echo); only finance's
own changes (``update_projects``) travel back to Dataverse, each with its new version.
"""

from __future__ import annotations

from contracts.maps import map_declaration
from contracts.projects import MSDYN_PROJECTS, ProjectsV2, ProjectV2, UpdateProjectsV1
from contracts.queues import table_map
from contracts.registry import Decoded
from shared.case_variants import CaseVariants
from shared.errors import Refusals
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork
from workers.finance.companies import known_company
from workers.finance.domain.expense_reports import FinanceProject
from workers.finance.domain.projects import change_project, project_from_dataverse
from workers.finance.store import reports as report_store
from workers.finance.store.projects import projects_for_update, projects_in_another_case

log = get_logger(__name__)
MASTER = map_declaration(MSDYN_PROJECTS.name).master


def apply_projects(message: Decoded[ProjectsV2], uow: UnitOfWork) -> None:
    """msdyn_projects from Dataverse: each project applied when its version is newer than finance's copy."""
    legal_entity = message.envelope.legal_entity
    known_company(uow.connection, legal_entity)
    rows = [row.model_dump(mode="json") for row in message.payload.rows]
    ids = [row["project_id"] for row in rows]
    variants = CaseVariants("msdyn_projects", "project", ids, lambda connection: projects_in_another_case(connection, ids))
    variants.refuse_held(uow.connection)
    held = projects_for_update(uow.connection, ids)
    applied, refusals = [], Refusals("msdyn_projects")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            outcome, project = project_from_dataverse(legal_entity, row, held.get(row["project_id"]), MASTER)
            if project is not None:
                applied.append(project)
            else:
                log.info("project row not applied", project_id=row["project_id"], outcome=outcome.value,
                         version=row["row_version"], origin=row["row_origin"])
    refusals.raise_if_any()
    with variants.guard(uow.connection):
        report_store.save_projects(uow.connection, applied)


def update_projects(message: Decoded[UpdateProjectsV1], uow: UnitOfWork) -> None:
    """Finance renames, closes or reopens projects; msdyn_projects carries each real change to Dataverse."""
    legal_entity = message.envelope.legal_entity
    known_company(uow.connection, legal_entity)
    rows = message.payload.rows
    held = projects_for_update(uow.connection, (row.project_id for row in rows))
    changed, refusals = [], Refusals("update_projects")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            project = change_project(legal_entity, row.project_id, row.name, row.status, held.get(row.project_id))
            if project != held[row.project_id]:
                changed.append(project)
    refusals.raise_if_any()
    report_store.save_projects(uow.connection, changed)
    if changed:
        _send_changes(message, uow, changed)


def _send_changes(message: Decoded[UpdateProjectsV1], uow: UnitOfWork, changed: list[FinanceProject]) -> None:
    """Finance's changes, whole rows; the bridge carries on only the fields the map declares two-way."""
    rows = [
        ProjectV2(
            project_id=project.project_id,
            name=project.name,
            project_manager=project.project_manager,
            billable=project.billable,
            status=project.status,
            row_version=project.row_version,
            row_origin=project.row_origin,
        )
        for project in changed
    ]
    uow.emit(
        table_map(MSDYN_PROJECTS.name).reverse_outbound,
        MSDYN_PROJECTS.name,
        MSDYN_PROJECTS.latest,
        ProjectsV2(rows=rows),
        correlation_id=message.envelope.correlation_id,
        legal_entity=message.envelope.legal_entity,
    )
