"""Projects and expense estimates; a project only uses the expense categories of its own company."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from contracts.envelope import Side
from contracts.fields import ProjectStatus
from contracts.money import to_cents
from contracts.row_versions import RowVersion, SideOutcome, decide_on_side
from shared.errors import BusinessRuleViolation


@dataclass(frozen=True)
class Project:
    legal_entity: str
    project_id: str
    name: str
    project_manager: str
    billable: bool
    status: ProjectStatus = ProjectStatus.ACTIVE
    #: Its version (contracts/row_versions.py); a new project gets its first when saved.
    row_version: int = 0
    row_origin: str = "dataverse"

    @property
    def is_active(self) -> bool:
        return self.status is ProjectStatus.ACTIVE


@dataclass(frozen=True)
class ExpenseEstimate:
    legal_entity: str
    project_id: str
    line_number: int
    expense_category: str
    date: dt.date
    quantity: Decimal
    unit_cost: Decimal
    amount: Decimal
    currency: str


def _owned_by(legal_entity: str, project_id: str, existing: Project | None) -> None:
    if existing is not None and existing.legal_entity != legal_entity:
        raise BusinessRuleViolation(
            f"project {project_id!r} is owned by company {existing.legal_entity}, not {legal_entity}"
        )


def new_project(legal_entity: str, project: Project, existing: Project | None) -> Project:
    """Create or update a project; a project never changes company, and keeps its status."""
    _owned_by(legal_entity, project.project_id, existing)
    if existing is not None:
        return dataclasses.replace(project, status=existing.status)
    return project


def change_project_status(legal_entity: str, project_id: str, status: ProjectStatus, existing: Project | None) -> Project:
    """Close or reopen a project of ``legal_entity``."""
    if existing is None:
        raise BusinessRuleViolation(f"project {project_id!r} does not exist")
    _owned_by(legal_entity, project_id, existing)
    return dataclasses.replace(existing, status=status)


def estimate_expense(
    legal_entity: str,
    *,
    project_id: str,
    line_number: int,
    expense_category: str,
    date: dt.date,
    quantity: Decimal,
    unit_cost: Decimal,
    currency: str,
    project: Project | None,
    company_categories: frozenset[str],
) -> ExpenseEstimate:
    """An estimate line, checked against the project's company and that company's categories.

    ``company_categories`` holds only the categories of ``legal_entity``: another company's
    categories are never looked at, so they can never be chosen.
    """
    if project is None or project.legal_entity != legal_entity:
        raise BusinessRuleViolation(f"project {project_id!r} is not a project of company {legal_entity}")
    if expense_category not in company_categories:
        raise BusinessRuleViolation(
            f"expense category {expense_category!r} is not an expense category of company {legal_entity}, "
            f"which owns project {project_id!r}"
        )
    return ExpenseEstimate(
        legal_entity=legal_entity,
        project_id=project_id,
        line_number=line_number,
        expense_category=expense_category,
        date=date,
        quantity=quantity,
        unit_cost=unit_cost,
        amount=to_cents(quantity * unit_cost),
        currency=currency,
    )


def project_changed_in_finance(
    legal_entity: str, row: Mapping[str, Any], held: Project | None, master: Side
) -> tuple[SideOutcome, Project | None]:
    """Finance's change to a project (name, status and version), and the project to save when it applies.

    Only what the map carries back changes: the project manager and billable flag stay Dataverse's.
    """
    if held is None:
        raise BusinessRuleViolation(f"project {row['project_id']!r} does not exist")
    _owned_by(legal_entity, row["project_id"], held)
    outcome = decide_on_side(RowVersion.of(held), RowVersion.of(row), master)
    if not outcome.applies:
        return outcome, None
    changed = dataclasses.replace(
        held, name=row["name"], status=ProjectStatus(row["status"]), row_version=row["row_version"], row_origin=row["row_origin"]
    )
    return outcome, changed
