"""Shared categories and expense categories (Expense management > Setup)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from contracts.fields import ExpenseType, TransactionClass
from shared.errors import BusinessRuleViolation


@dataclass(frozen=True)
class SharedCategory:
    """One transaction category in one transaction class; shared by every legal entity."""

    category: str
    transaction_class: TransactionClass
    name: str
    description: str | None = None
    can_be_used_in_expense: bool = False
    expense_type: ExpenseType | None = None


@dataclass(frozen=True)
class ExpenseCategory:
    """An expense category of one legal entity, built on an expense-enabled shared category."""

    legal_entity: str
    expense_category: str
    name: str
    shared_category: str
    expense_type: ExpenseType


def shared_categories_for(category: str, name: str, description: str | None) -> list[SharedCategory]:
    """A transaction category arriving from Dataverse becomes four shared categories, one per class."""
    return [SharedCategory(category, cls, name, description) for cls in TransactionClass]


def enable_for_expense(shared: SharedCategory | None, category: str, expense_type: ExpenseType) -> SharedCategory:
    """Set "Can be used in Expense" and the expense type on the Expense shared category."""
    if shared is None:
        raise BusinessRuleViolation(
            f"shared category {category!r} of class expense does not exist "
            "(its transaction category has not reached finance)"
        )
    return replace(shared, can_be_used_in_expense=True, expense_type=expense_type)


def new_expense_category(
    legal_entity: str, expense_category: str, name: str, shared_code: str, shared: SharedCategory | None
) -> ExpenseCategory:
    """An expense category can only be created on an expense-enabled shared category."""
    if shared is None:
        raise BusinessRuleViolation(f"shared category {shared_code!r} of class expense does not exist")
    if not shared.can_be_used_in_expense or shared.expense_type is None:
        raise BusinessRuleViolation(
            f"shared category {shared_code!r} is not enabled for expense "
            "(set Can be used in Expense and an expense type first)"
        )
    return ExpenseCategory(legal_entity, expense_category, name, shared_code, shared.expense_type)
