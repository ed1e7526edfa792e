"""Finance's copy of the projects Dataverse masters: applying Dataverse's rows, and finance's own changes.

``msdyn_projects`` is two-way: finance may rename, close or reopen a project (``update_projects``)
and the change travels back to Dataverse. Every row carries its version
(``contracts/row_versions.py``): a row from Dataverse is applied only when it is newer than
finance's copy, and finance's own change makes the next version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from contracts.envelope import Side
from contracts.fields import ProjectStatus
from contracts.row_versions import RowVersion, SideOutcome, decide_on_side, stamp_local_change
from shared.errors import BusinessRuleViolation
from workers.finance.domain.expense_reports import FinanceProject


def project_from_dataverse(
    legal_entity: str, row: Mapping[str, Any], held: FinanceProject | None, master: Side
) -> tuple[SideOutcome, FinanceProject | None]:
    """What to do with a project row Dataverse sent, and the project to save when it applies."""
    outcome = decide_on_side(RowVersion.of(held) if held is not None else None, RowVersion.of(row), master)
    if not outcome.applies:
        return outcome, None
    if held is not None and held.legal_entity != legal_entity:
        raise BusinessRuleViolation(f"project {row['project_id']!r} is a project of {held.legal_entity}, not {legal_entity}")
    missing = [name for name in ("project_manager", "billable") if row.get(name) is None]
    if missing:
        raise BusinessRuleViolation(f"project {row['project_id']!r} from Dataverse lacks {', '.join(missing)}")
    fields = {name: row[name] for name in ("project_id", "name", "project_manager", "billable", "row_version", "row_origin")}
    return outcome, FinanceProject(legal_entity=legal_entity, status=ProjectStatus(row["status"]), **fields)


def change_project(
    legal_entity: str, project_id: str, name: str | None, status: ProjectStatus | None, held: FinanceProject | None
) -> FinanceProject:
    """Finance renames, closes or reopens one of its company's projects; a real change makes a new version."""
    if held is None:
        raise BusinessRuleViolation(f"project {project_id!r} is unknown to finance (projects come from Dataverse)")
    if held.legal_entity != legal_entity:
        raise BusinessRuleViolation(f"project {project_id!r} is owned by company {held.legal_entity}, not {legal_entity}")
    changed = dataclasses.replace(held, name=name if name is not None else held.name, status=status or held.status)
    return stamp_local_change(held, changed, Side.FINANCE)
