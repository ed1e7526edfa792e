"""Dataverse reference data (categories, projects, estimates), read and written in bulk: one statement per batch."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, select

from contracts.fields import ProjectStatus
from shared.case_variants import held_in_another_case
from shared.database import as_row, upsert
from shared.sql_lists import ValueList, one_of
from workers.dataverse.domain.projects import ExpenseEstimate, Project
from workers.dataverse.tables import expense_categories, expense_estimates, projects, transaction_categories


def transaction_categories_in_another_case(connection: Connection, codes: Iterable[str]) -> dict[str, str]:
    """Those of ``codes`` held only in another case, with the code as held (one statement)."""
    return held_in_another_case(connection, transaction_categories.c.category, codes)


def expense_categories_in_another_case(connection: Connection, legal_entity: str, codes: Iterable[str]) -> dict[str, str]:
    """Those of ``codes`` that ``legal_entity`` holds only in another case, with the code as held."""
    return held_in_another_case(
        connection, expense_categories.c.expense_category, codes, expense_categories.c.legal_entity == legal_entity
    )


def projects_in_another_case(connection: Connection, project_ids: Iterable[str]) -> dict[str, str]:
    """Those of ``project_ids`` held only in another case (by any company: project ids are unique), as held."""
    return held_in_another_case(connection, projects.c.project_id, project_ids)


def save_transaction_categories(connection: Connection, rows: list[dict[str, Any]]) -> None:
    upsert(connection, transaction_categories, rows, key=("category",))


def save_expense_categories(connection: Connection, legal_entity: str, rows: list[dict[str, Any]]) -> None:
    upsert(
        connection,
        expense_categories,
        [{**row, "legal_entity": legal_entity} for row in rows],
        key=("legal_entity", "expense_category"),
    )


# Built once (one_of: the list as one parameter, see shared/sql_lists.py).
_COMPANY_CATEGORIES = select(expense_categories.c.expense_category).where(
    expense_categories.c.legal_entity == bindparam("b_legal_entity"),
    one_of(expense_categories.c.expense_category, bindparam("b_codes", type_=ValueList())),
)
_PROJECTS = (
    select(projects)
    .where(one_of(projects.c.project_id, bindparam("b_project_ids", type_=ValueList())))
    .order_by(projects.c.project_id)
)
_PROJECTS_LOCKED = _PROJECTS.with_for_update()


def company_expense_categories(connection: Connection, legal_entity: str, codes: Iterable[str]) -> frozenset[str]:
    """Those of ``codes`` that are expense categories of ``legal_entity``; other companies are never read."""
    found = connection.scalars(_COMPANY_CATEGORIES, {"b_legal_entity": legal_entity, "b_codes": sorted(set(codes))})
    return frozenset(found)


def projects_by_id(connection: Connection, project_ids: Iterable[str], *, for_update: bool = False) -> dict[str, Project]:
    """Projects by id; ``for_update`` locks them on PostgreSQL until the transaction ends (a change and
    a row from finance for the same project then decide one after the other)."""
    query = _PROJECTS_LOCKED if for_update else _PROJECTS  # FOR UPDATE is rendered on PostgreSQL only
    rows = connection.execute(query, {"b_project_ids": sorted(set(project_ids))}).mappings()
    return {row["project_id"]: Project(**{**row, "status": ProjectStatus(row["status"])}) for row in rows}


def save_projects(connection: Connection, new: list[Project]) -> None:
    upsert(connection, projects, [as_row(project) for project in new], key=("project_id",))


def save_expense_estimates(connection: Connection, estimates: list[ExpenseEstimate]) -> None:
    upsert(connection, expense_estimates, [as_row(line) for line in estimates], key=("project_id", "line_number"))
