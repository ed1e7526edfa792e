"""Finance message handlers: a plain function per contract, message first, unit of work after."""

from __future__ import annotations

from contracts.expense_categories import (
    MSDYN_EXPENSECATEGORIES,
    CreateExpenseCategoriesV1,
    EnableExpenseOnSharedCategoryV1,
    ExpenseCategoriesV1,
    ExpenseCategoryV1,
)
from contracts.queues import table_map
from contracts.registry import Decoded
from contracts.transaction_categories import TransactionCategoriesV1
from shared.case_variants import CaseVariants
from shared.errors import Refusals
from shared.unit_of_work import UnitOfWork
from workers.finance.companies import known_company
from workers.finance.store import categories as category_store
from workers.finance.domain.categories import (
    enable_for_expense,
    new_expense_category,
    shared_categories_for,
)


def create_shared_categories(message: Decoded[TransactionCategoriesV1], uow: UnitOfWork) -> None:
    """msdyn_transactioncategories: four shared categories per transaction category, once."""
    codes = [row.category for row in message.payload.rows]
    variants = CaseVariants(
        "msdyn_transactioncategories", "shared category", codes,
        lambda connection: category_store.shared_categories_in_another_case(connection, codes),
    )
    variants.refuse_held(uow.connection)
    categories = [
        shared
        for row in message.payload.rows
        for shared in shared_categories_for(row.category, row.name, row.description)
    ]
    with variants.guard(uow.connection):
        category_store.save_new_shared_categories(uow.connection, categories)


def enable_expense_on_shared_category(message: Decoded[EnableExpenseOnSharedCategoryV1], uow: UnitOfWork) -> None:
    rows = message.payload.rows
    existing = category_store.expense_shared_categories(uow.connection, (row.category for row in rows))
    enabled, refusals = [], Refusals("enable_expense_on_shared_category")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index}"):
            enabled.append(enable_for_expense(existing.get(row.category), row.category, row.expense_type))
    refusals.raise_if_any()
    category_store.save_expense_settings(uow.connection, enabled)


def create_expense_categories(message: Decoded[CreateExpenseCategoriesV1], uow: UnitOfWork) -> None:
    """Expense categories of one legal entity; carried to Dataverse by msdyn_expensecategories."""
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    known_company(uow.connection, legal_entity)
    codes = [row.expense_category for row in rows]
    variants = CaseVariants(
        "create_expense_categories", "expense category", codes,
        lambda connection: category_store.expense_categories_in_another_case(connection, legal_entity, codes),
        f" of company {legal_entity}",
    )
    variants.refuse_held(uow.connection)
    shared = category_store.expense_shared_categories(uow.connection, (row.shared_category for row in rows))
    created, refusals = [], Refusals("create_expense_categories")
    for index, row in enumerate(rows):
        with refusals.row(f"rows.{index} ({row.expense_category})"):
            created.append(
                new_expense_category(
                    legal_entity, row.expense_category, row.name, row.shared_category, shared.get(row.shared_category)
                )
            )
    refusals.raise_if_any()
    with variants.guard(uow.connection):
        category_store.save_expense_categories(uow.connection, created)
    uow.emit(
        table_map(MSDYN_EXPENSECATEGORIES.name).outbound,
        MSDYN_EXPENSECATEGORIES.name,
        MSDYN_EXPENSECATEGORIES.latest,
        ExpenseCategoriesV1(
            rows=[
                ExpenseCategoryV1(
                    expense_category=category.expense_category,
                    name=category.name,
                    transaction_category=category.shared_category,
                    expense_type=category.expense_type,
                )
                for category in created
            ]
        ),
        correlation_id=message.envelope.correlation_id,
        legal_entity=legal_entity,
    )
