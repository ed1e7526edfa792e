"""Dataverse message handlers: a plain function per contract, message first, unit of work after."""

from __future__ import annotations

from typing import Any

from contracts.expense_categories import ExpenseCategoriesV1
from contracts.projects import (
    MSDYN_PROJECTS,
    CreateExpenseEstimatesV2,
    CreateProjectsV1,
    ProjectsV2,
    ProjectV2,
    SetProjectStatusV1,
)
from contracts.queues import table_map
from contracts.registry import Decoded
from contracts.transaction_categories import (
    MSDYN_TRANSACTIONCATEGORIES,
    CreateTransactionCategoriesV1,
    TransactionCategoriesV1,
)
from contracts.envelope import Side
from contracts.row_versions import own_changes, stamp_local_change
from shared.case_variants import CaseVariants
from shared.errors import Refusals
from shared.unit_of_work import UnitOfWork
from workers.dataverse import repository
from workers.dataverse.domain.projects import Project, change_project_status, estimate_expense, new_project


def create_transaction_categories(message: Decoded[CreateTransactionCategoriesV1], uow: UnitOfWork) -> None:
    """Transaction categories are mastered here and carried to finance by msdyn_transactioncategories."""
    codes = [row.category for row in message.payload.rows]
    variants = CaseVariants(
        "create_transaction_categories", "transaction category", codes,
        lambda connection: repository.transaction_categories_in_another_case(connection, codes),
    )
    variants.refuse_held(uow.connection)
    rows = [row.model_dump(mode="json") for row in message.payload.rows]
    with variants.guard(uow.connection):
        repository.save_transaction_categories(uow.connection, rows)
    uow.emit(
        table_map(MSDYN_TRANSACTIONCATEGORIES.name).outbound,
        MSDYN_TRANSACTIONCATEGORIES.name,
        MSDYN_TRANSACTIONCATEGORIES.latest,
        TransactionCategoriesV1(rows=message.payload.rows),
        correlation_id=message.envelope.correlation_id,
    )


def apply_expense_categories(message: Decoded[ExpenseCategoriesV1], uow: UnitOfWork) -> None:
    """msdyn_expensecategories: the legal-entity-specific copies of finance's expense categories."""
    legal_entity = message.envelope.legal_entity
    codes = [row.expense_category for row in message.payload.rows]
    variants = CaseVariants(
        "msdyn_expensecategories", "expense category", codes,
        lambda connection: repository.expense_categories_in_another_case(connection, legal_entity, codes),
        f" of company {legal_entity}",
    )
    variants.refuse_held(uow.connection)
    rows = [row.model_dump(mode="json") for row in message.payload.rows]
    with variants.guard(uow.connection):
        repository.save_expense_categories(uow.connection, legal_entity, rows)


def create_projects(message: Decoded[CreateProjectsV1], uow: UnitOfWork) -> None:
    """Projects are mastered here; an existing project keeps its status. msdyn_projects tells finance."""
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    ids = [row.project_id for row in rows]
    variants = CaseVariants("create_projects", "project", ids, lambda connection: repository.projects_in_another_case(connection, ids))
    variants.refuse_held(uow.connection)
    existing = repository.projects_by_id(uow.connection, ids, for_update=True)
    created, refusals = [], Refusals("create_projects")
    for index, row in enumerate(rows):
        project = Project(legal_entity=legal_entity, **row.model_dump())
        with refusals.row(f"rows.{index}"):
            held = existing.get(row.project_id)
            created.append(stamp_local_change(held, new_project(legal_entity, project, held), Side.DATAVERSE))
    refusals.raise_if_any()
    with variants.guard(uow.connection):
        repository.save_projects(uow.connection, created)
    _send_projects(message, uow, created)


def set_project_status(message: Decoded[SetProjectStatusV1], uow: UnitOfWork) -> None:
    """Close or reopen projects of the envelope's company; msdyn_projects tells finance."""
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    existing = repository.projects_by_id(uow.connection, (row.project_id for row in rows), for_update=True)
    changed, refusals = [], Refusals("set_project_status")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            held = existing.get(row.project_id)
            changed.append(stamp_local_change(held, change_project_status(legal_entity, row.project_id, row.status, held), Side.DATAVERSE))
    refusals.raise_if_any()
    repository.save_projects(uow.connection, changed)
    _send_projects(message, uow, changed)


def _send_projects(message: Decoded[Any], uow: UnitOfWork, saved: list[Project]) -> None:
    """Finance needs each project's manager (who approves its expense lines), billable flag and status.

    Only Dataverse's own versions are sent: a project whose version came from finance through the
    bridge (saved again unchanged) is not sent back, which would be an echo.
    """
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
        for project in own_changes(saved, Side.DATAVERSE)
    ]
    if not rows:
        return
    uow.emit(
        table_map(MSDYN_PROJECTS.name).outbound,
        MSDYN_PROJECTS.name,
        MSDYN_PROJECTS.latest,
        ProjectsV2(rows=rows),
        correlation_id=message.envelope.correlation_id,
        legal_entity=message.envelope.legal_entity,
    )


def create_expense_estimates(message: Decoded[CreateExpenseEstimatesV2], uow: UnitOfWork) -> None:
    """Estimate lines may only name expense categories of the company that owns the project."""
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    projects = repository.projects_by_id(uow.connection, (row.project_id for row in rows))
    categories = repository.company_expense_categories(
        uow.connection, legal_entity, (row.expense_category for row in rows)
    )
    estimates, refusals = [], Refusals("create_expense_estimates")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            estimates.append(
                estimate_expense(
                    legal_entity,
                    **row.model_dump(),
                    project=projects.get(row.project_id),
                    company_categories=categories,
                )
            )
    refusals.raise_if_any()
    repository.save_expense_estimates(uow.connection, estimates)
