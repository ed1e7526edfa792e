"""Projects and their expense estimates, owned by Dataverse."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, LineNumber, Name, Person, ProjectStatus
from contracts.money import Amount, CurrencyCode, Quantity
from contracts.registry import Contract, Kind, Scope
from contracts.row_versions import Origin
from contracts.wire import Date, Flag, WholeNumber


class NewProjectV1(Row):
    project_id: Code
    name: Name
    project_manager: Person
    billable: Flag


class CreateProjectsV1(Batch):
    """Projects owned by the envelope's legal entity."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[NewProjectV1]


class ExpenseEstimateLineV1(Row):
    project_id: Code
    line_number: LineNumber
    expense_category: Code
    date: Date
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
    date: Date
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
    billable: Flag
    status: ProjectStatus


class ProjectsV1(Batch):
    """Projects of one legal entity as Dataverse holds them, on their way to finance."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[ProjectV1]


class ProjectV2(Row):
    """A project row with its version (contracts/row_versions.py): msdyn_projects is two-way from v2.

    Rows from Dataverse carry every field. Rows from finance carry only the fields the map declares
    two-way (project id, name, status): a project's manager and billable flag are Dataverse's alone.
    """

    project_id: Code
    name: Name
    project_manager: Person | None = None
    billable: Flag | None = None
    status: ProjectStatus
    row_version: WholeNumber = Field(ge=0, description="The row's version counter; 0 for a row without a version.")
    row_origin: Origin = Field(description="The side whose change this version is.")


class ProjectsV2(Batch):
    """Projects of one legal entity with their versions, from Dataverse to finance or back."""

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[ProjectV2]


class ProjectUpdateV1(Row):
    project_id: Code
    name: Name | None = None
    status: ProjectStatus | None = None


class UpdateProjectsV1(Batch):
    """Finance's own changes to projects of the envelope's legal entity: a new name, status, or both.

    A field left out keeps its value; a row that changes nothing makes no new version and sends nothing.
    """

    key_fields: ClassVar[tuple[str, ...]] = ("project_id",)
    rows: Rows[ProjectUpdateV1]


def projects_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """A v1 row was written by Dataverse before rows had versions: unversioned (counter 0)."""
    rows = [{**row, "row_version": 0, "row_origin": "dataverse"} for row in payload["rows"]]
    return {**payload, "rows": rows}


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
    versions=(ProjectsV1, ProjectsV2),
    upcasters=(projects_v1_to_v2,),
    # Unchanged since v1 (the description is part of every version's published schema); from v2
    # rows carry their version and the map is two-way: finance's name and status changes travel back.
    description="Dataverse -> finance: projects with owning company, project manager, billable, status.",
)

UPDATE_PROJECTS = Contract(
    name="update_projects",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(UpdateProjectsV1,),
    description="Upstream -> finance: rename, close or reopen projects in finance; msdyn_projects carries it to Dataverse.",
)
