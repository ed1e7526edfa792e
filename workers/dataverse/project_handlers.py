"""Dataverse's handler of finance's changes to projects, carried back by the two-way map msdyn_projects.

Dataverse masters projects; finance may rename, close or reopen them. A change from finance is
applied only when its version is newer than Dataverse's (``contracts/row_versions.py``): when
both sides changed a project from the same version, Dataverse's change wins and finance's is not
applied. What Dataverse applies from the bridge it never publishes again (no echo).
"""

from __future__ import annotations

from contracts.maps import map_declaration
from contracts.projects import MSDYN_PROJECTS, ProjectsV2
from contracts.registry import Decoded
from shared.errors import Refusals
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork
from workers.dataverse import repository
from workers.dataverse.domain.projects import project_changed_in_finance

log = get_logger(__name__)
MASTER = map_declaration(MSDYN_PROJECTS.name).master


def apply_project_changes(message: Decoded[ProjectsV2], uow: UnitOfWork) -> None:
    """msdyn_projects from finance: a project's name and status, applied when the version is newer."""
    legal_entity = message.envelope.legal_entity
    rows = [row.model_dump(mode="json") for row in message.payload.rows]
    held = repository.projects_by_id(uow.connection, (row["project_id"] for row in rows), for_update=True)
    applied, refusals = [], Refusals("msdyn_projects")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            outcome, project = project_changed_in_finance(legal_entity, row, held.get(row["project_id"]), MASTER)
            if project is not None:
                applied.append(project)
            else:
                log.info("project change from finance not applied", project_id=row["project_id"],
                         outcome=outcome.value, version=row["row_version"], origin=row["row_origin"])
    refusals.raise_if_any()
    repository.save_projects(uow.connection, applied)
