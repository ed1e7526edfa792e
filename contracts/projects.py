"""Projects and their expense estimates, owned by Dataverse."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, LineNumber, Name, Person, ProjectStatus
from contracts.money import Amount, CurrencyCode, Quantity
from contracts.registry import Contract, Kind, Scope


class NewProjectV1(Row):
    project_id: Code
    name: Name
    project_manager: Person
    billable: bool


class CreateProjectsV1(Batch):
    """Projects owned by the envelope's legal entity."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[NewProjectV1]


class ExpenseEstimateLineV1(Row):
    project_id: Code
    line_number: LineNumber
    expense_category: Code
    date: dt.date
    amount: Amount
    currency: CurrencyCode


class CreateExpenseEstimatesV1(Batch):
    """Version 1: one total amount per estimate line."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id", "line_number")
    rows: Rows[ExpenseEstimateLineV1]


class ExpenseEstimateLineV2(Row):
    project_id: Code
    line_number: LineNumber
    expense_category: Code
    date: dt.date
    quantity: Quantity
    unit_cost: Amount
    currency: CurrencyCode


class CreateExpenseEstimatesV2(Batch):
    """Version 2: quantity times unit cost, as a project manager estimates (three nights at 120)."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id", "line_number")
    rows: Rows[ExpenseEstimateLineV2]


class ProjectStatusChangeV1(Row):
    project_id: Code
    status: ProjectStatus


class SetProjectStatusV1(Batch):
    """Close (or reopen) projects of the envelope's legal entity."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[ProjectStatusChangeV1]


class ProjectV1(Row):
    project_id: Code
    name: Name
    project_manager: Person
    billable: bool
    status: ProjectStatus


class ProjectsV1(Batch):
    """Projects of one legal entity as Dataverse holds them, on their way to finance."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[ProjectV1]


def estimates_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """A v1 total becomes one unit at that cost."""
    rows = []
    for row in payload["rows"]:
        upcast = {key: value for key, value in row.items() if key != "amount"}
        upcast["quantity"] = "1"
        upcast["unit_cost"] = row["amount"]
        rows.append(upcast)
    return {**payload, "rows": rows}


CREATE_PROJECTS = Contract(
    name="create_projects",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(CreateProjectsV1,),
    description="Upstream -> Dataverse: projects with their owning company and project manager.",
)

CREATE_EXPENSE_ESTIMATES = Contract(
    name="create_expense_estimates",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(CreateExpenseEstimatesV1, CreateExpenseEstimatesV2),
    upcasters=(estimates_v1_to_v2,),
    description="Upstream -> Dataverse: expense estimate lines on projects of one company.",
)

SET_PROJECT_STATUS = Contract(
    name="set_project_status",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(SetProjectStatusV1,),
    description="Upstream -> Dataverse: close or reopen projects.",
)

MSDYN_PROJECTS = Contract(
    name="msdyn_projects",
    kind=Kind.TABLE_MAP,
    scope=Scope.LEGAL_ENTITY,
    versions=(ProjectsV1,),
    description="Dataverse -> finance: projects with owning company, project manager, billable, status.",
)
