"""Shared and expense categories."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from contracts.fields import ExpenseType, TransactionClass
from shared.case_variants import held_in_another_case
from shared.database import as_row, upsert
from workers.finance.domain.categories import ExpenseCategory, SharedCategory
from workers.finance.tables import expense_categories, shared_categories


def save_new_shared_categories(connection: Connection, categories: list[SharedCategory]) -> None:
    """Create shared categories; an existing one keeps its expense settings, only its texts change."""
    upsert(
        connection,
        shared_categories,
        [as_row(category) for category in categories],
        key=("category", "transaction_class"),
        update=("name", "description"),
    )


def shared_categories_in_another_case(connection: Connection, codes: Iterable[str]) -> dict[str, str]:
    """Those of ``codes`` held only in another case, with the code as held (one statement)."""
    return held_in_another_case(connection, shared_categories.c.category, codes)


def expense_categories_in_another_case(connection: Connection, legal_entity: str, codes: Iterable[str]) -> dict[str, str]:
    """Those of ``codes`` that ``legal_entity`` holds only in another case, with the code as held."""
    return held_in_another_case(
        connection, expense_categories.c.expense_category, codes, expense_categories.c.legal_entity == legal_entity
    )


def expense_shared_categories(connection: Connection, codes: Iterable[str]) -> dict[str, SharedCategory]:
    """The shared categories of class Expense with these codes, by code."""
    rows = connection.execute(
        select(shared_categories).where(
            shared_categories.c.category.in_(sorted(set(codes))),
            shared_categories.c.transaction_class == TransactionClass.EXPENSE.value,
        )
    ).mappings()
    return {row["category"]: _shared_category(row) for row in rows}


def save_expense_settings(connection: Connection, categories: list[SharedCategory]) -> None:
    upsert(
        connection,
        shared_categories,
        [as_row(category) for category in categories],
        key=("category", "transaction_class"),
        update=("can_be_used_in_expense", "expense_type"),
    )


def save_expense_categories(connection: Connection, categories: list[ExpenseCategory]) -> None:
    upsert(
        connection,
        expense_categories,
        [as_row(category) for category in categories],
        key=("legal_entity", "expense_category"),
    )


def _shared_category(row: dict) -> SharedCategory:
    return SharedCategory(
        category=row["category"],
        transaction_class=TransactionClass(row["transaction_class"]),
        name=row["name"],
        description=row["description"],
        can_be_used_in_expense=row["can_be_used_in_expense"],
        expense_type=ExpenseType(row["expense_type"]) if row["expense_type"] else None,
    )
