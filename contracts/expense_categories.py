"""Shared and expense categories: set up in finance, carried to Dataverse by ``msdyn_expensecategories``."""

from __future__ import annotations

from typing import ClassVar

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, ExpenseType, Name
from contracts.registry import Contract, Kind, Scope


class ExpenseUseV1(Row):
    category: Code
    expense_type: ExpenseType


class EnableExpenseOnSharedCategoryV1(Batch):
    """An operator sets "Can be used in Expense" and an expense type on Expense shared categories."""

    key_fields: ClassVar[tuple[str, ...]] = ("category",)
    rows: Rows[ExpenseUseV1]


class NewExpenseCategoryV1(Row):
    expense_category: Code
    name: Name
    shared_category: Code


class CreateExpenseCategoriesV1(Batch):
    """Expense categories for the envelope's legal entity, each on an expense-enabled shared category."""

    key_fields: ClassVar[tuple[str, ...]] = ("expense_category",)
    rows: Rows[NewExpenseCategoryV1]


class ExpenseCategoryV1(Row):
    expense_category: Code
    name: Name
    transaction_category: Code
    expense_type: ExpenseType


class ExpenseCategoriesV1(Batch):
    """Expense categories of one legal entity, as finance holds them, on their way to Dataverse."""

    key_fields: ClassVar[tuple[str, ...]] = ("expense_category",)
    rows: Rows[ExpenseCategoryV1]


ENABLE_EXPENSE_ON_SHARED_CATEGORY = Contract(
    name="enable_expense_on_shared_category",
    kind=Kind.COMMAND,
    scope=Scope.GLOBAL,
    versions=(EnableExpenseOnSharedCategoryV1,),
    description="Upstream -> finance: set Can be used in Expense and the expense type.",
)

CREATE_EXPENSE_CATEGORIES = Contract(
    name="create_expense_categories",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(CreateExpenseCategoriesV1,),
    description="Upstream -> finance: create expense categories for one legal entity.",
)

MSDYN_EXPENSECATEGORIES = Contract(
    name="msdyn_expensecategories",
    kind=Kind.TABLE_MAP,
    scope=Scope.LEGAL_ENTITY,
    versions=(ExpenseCategoriesV1,),
    description="Finance -> Dataverse: legal-entity-specific expense categories.",
)
