"""Dataverse reference data (categories, projects, estimates), read and written in bulk: one statement per batch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from contracts.fields import ProjectStatus
from shared.database import as_row, upsert
from workers.dataverse.domain.projects import ExpenseEstimate, Project
from workers.dataverse.tables import expense_categories, expense_estimates, projects, transaction_categories


def save_transaction_categories(connection: Connection, rows: list[dict[str, Any]]) -> None:
    upsert(connection, transaction_categories, rows, key=("category",))


def save_expense_categories(connection: Connection, legal_entity: str, rows: list[dict[str, Any]]) -> None:
    upsert(
        connection,
        expense_categories,
        [{**row, "legal_entity": legal_entity} for row in rows],
        key=("legal_entity", "expense_category"),
    )


def company_expense_categories(connection: Connection, legal_entity: str, codes: Iterable[str]) -> frozenset[str]:
    """Those of ``codes`` that are expense categories of ``legal_entity``; other companies are never read."""
    found = connection.scalars(
        select(expense_categories.c.expense_category).where(
            expense_categories.c.legal_entity == legal_entity,
            expense_categories.c.expense_category.in_(sorted(set(codes))),
        )
    )
    return frozenset(found)


def projects_by_id(connection: Connection, project_ids: Iterable[str], *, for_update: bool = False) -> dict[str, Project]:
    """Projects by id; ``for_update`` locks them on PostgreSQL until the transaction ends (a change and
    a row from finance for the same project then decide one after the other)."""
    query = select(projects).where(projects.c.project_id.in_(sorted(set(project_ids)))).order_by(projects.c.project_id)
    if for_update and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = connection.execute(query).mappings()
    return {row["project_id"]: Project(**{**row, "status": ProjectStatus(row["status"])}) for row in rows}


def save_projects(connection: Connection, new: list[Project]) -> None:
    upsert(connection, projects, [as_row(project) for project in new], key=("project_id",))


def save_expense_estimates(connection: Connection, estimates: list[ExpenseEstimate]) -> None:
    upsert(connection, expense_estimates, [as_row(line) for line in estimates], key=("project_id", "line_number"))
