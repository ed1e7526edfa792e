"""Finance setup: shared categories per transaction class, expense use, expense categories per company."""

from __future__ import annotations

import pytest

from contracts.fields import ExpenseType, TransactionClass
from shared.errors import BusinessRuleViolation, PermanentError
from workers.finance.domain.categories import (
    ExpenseCategory,
    SharedCategory,
    enable_for_expense,
    new_expense_category,
    shared_categories_for,
)


def expense_shared(category: str = "TRAVEL", *, enabled: bool = False, expense_type: ExpenseType | None = None) -> SharedCategory:
    return SharedCategory(category, TransactionClass.EXPENSE, "Travel", None, enabled, expense_type)


def test_a_transaction_category_becomes_four_shared_categories_one_per_class():
    shared = shared_categories_for("TRAVEL", "Travel", "Trips to customers")

    assert [each.transaction_class for each in shared] == [
        TransactionClass.HOUR,
        TransactionClass.FEE,
        TransactionClass.ITEM,
        TransactionClass.EXPENSE,
    ]
    assert {(each.category, each.name, each.description) for each in shared} == {("TRAVEL", "Travel", "Trips to customers")}


def test_new_shared_categories_are_not_yet_usable_in_expense():
    shared = shared_categories_for("TRAVEL", "Travel", None)

    assert not any(each.can_be_used_in_expense for each in shared)
    assert all(each.expense_type is None for each in shared)


def test_enabling_expense_sets_the_flag_and_the_expense_type():
    before = expense_shared()

    after = enable_for_expense(before, "TRAVEL", ExpenseType.HOTEL)

    assert after.can_be_used_in_expense is True
    assert after.expense_type is ExpenseType.HOTEL
    assert (after.category, after.transaction_class, after.name) == ("TRAVEL", TransactionClass.EXPENSE, "Travel")
    assert before.can_be_used_in_expense is False  # shared categories are values; the old one is untouched


def test_enabling_expense_again_changes_the_expense_type():
    enabled = enable_for_expense(expense_shared(), "TRAVEL", ExpenseType.HOTEL)

    assert enable_for_expense(enabled, "TRAVEL", ExpenseType.AIRLINE).expense_type is ExpenseType.AIRLINE


def test_enabling_expense_on_a_shared_category_that_has_not_arrived_is_refused():
    with pytest.raises(BusinessRuleViolation, match=r"shared category 'TRAVEL' of class expense does not exist"):
        enable_for_expense(None, "TRAVEL", ExpenseType.HOTEL)


def test_an_expense_category_carries_the_expense_type_of_its_shared_category():
    shared = enable_for_expense(expense_shared(), "TRAVEL", ExpenseType.HOTEL)

    category = new_expense_category("USMF", "HOTEL-US", "Hotel (US)", "TRAVEL", shared)

    assert category == ExpenseCategory(
        legal_entity="USMF",
        expense_category="HOTEL-US",
        name="Hotel (US)",
        shared_category="TRAVEL",
        expense_type=ExpenseType.HOTEL,
    )


def test_an_expense_category_on_a_missing_shared_category_is_refused():
    with pytest.raises(BusinessRuleViolation, match=r"shared category 'TRAVEL' of class expense does not exist"):
        new_expense_category("USMF", "HOTEL-US", "Hotel (US)", "TRAVEL", None)


def test_an_expense_category_on_a_shared_category_not_enabled_for_expense_is_refused():
    with pytest.raises(BusinessRuleViolation, match=r"'TRAVEL' is not enabled for expense .*Can be used in Expense"):
        new_expense_category("USMF", "HOTEL-US", "Hotel (US)", "TRAVEL", expense_shared())


def test_the_flag_without_an_expense_type_is_not_enough():
    half_enabled = expense_shared(enabled=True, expense_type=None)

    with pytest.raises(BusinessRuleViolation, match="not enabled for expense"):
        new_expense_category("USMF", "HOTEL-US", "Hotel (US)", "TRAVEL", half_enabled)


def test_a_broken_setup_rule_is_a_permanent_error_so_it_is_dead_lettered_at_once():
    with pytest.raises(PermanentError):
        new_expense_category("USMF", "HOTEL-US", "Hotel (US)", "TRAVEL", None)
