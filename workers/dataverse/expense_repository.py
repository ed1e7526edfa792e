"""Expense records and actuals, read and written in bulk: one statement per batch, never one per row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from contracts.actuals import ActualPostingV1
from shared.database import as_row, insert_ignoring_duplicates, update_rows, upsert
from shared.sql_lists import ValueList, one_of
from workers.dataverse.domain.actuals import Actual, PostingStatus
from workers.dataverse.domain.expenses import ApprovalStatus, ExpenseRecord
from workers.dataverse.tables import actuals, expenses

#: Columns finance masters; the approval status is Dataverse's own and survives a redelivery.
_FINANCE_COLUMNS = [c.name for c in expenses.columns if c.name not in ("expense_id", "approval_status")]


def expense_owners(connection: Connection, expense_ids: Iterable[str]) -> dict[str, str]:
    """Expense id -> owning company, for those of ``expense_ids`` already recorded."""
    rows = connection.execute(_EXPENSE_OWNERS, {"b_expense_ids": sorted(set(expense_ids))})
    return {row.expense_id: row.legal_entity for row in rows}


_EXPENSE_OWNERS = select(expenses.c.expense_id, expenses.c.legal_entity).where(
    one_of(expenses.c.expense_id, bindparam("b_expense_ids", type_=ValueList()))
)


def save_expenses(connection: Connection, records: Sequence[ExpenseRecord]) -> None:
    upsert(connection, expenses, [as_row(record) for record in records], key=("expense_id",), update=_FINANCE_COLUMNS)


def expense_record(row: Mapping[str, Any]) -> ExpenseRecord:
    """An expense record from a row of the ``expenses`` table (or a join that has all its columns)."""
    values = {column.name: row[column.name] for column in expenses.columns}
    return ExpenseRecord(**{**values, "approval_status": ApprovalStatus(values["approval_status"])})


def mark_approved(connection: Connection, expense_ids: Sequence[str]) -> None:
    if expense_ids:
        connection.execute(_MARK_APPROVED, {"b_expense_ids": sorted(set(expense_ids))})


_MARK_APPROVED = (
    expenses.update()
    .where(one_of(expenses.c.expense_id, bindparam("b_expense_ids", type_=ValueList())))
    .values(approval_status=ApprovalStatus.APPROVED.value)
)


def save_actuals(connection: Connection, new: Sequence[Actual]) -> int:
    """Insert the actuals whose ids are new; returns how many were inserted."""
    return insert_ignoring_duplicates(connection, actuals, [as_row(actual) for actual in new])


def known_actuals(connection: Connection, legal_entity: str, actual_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``actual_ids`` that are actuals of ``legal_entity``."""
    found = connection.scalars(_KNOWN_ACTUALS, {"b_legal_entity": legal_entity, "b_actual_ids": sorted(set(actual_ids))})
    return frozenset(found)


_KNOWN_ACTUALS = select(actuals.c.actual_id).where(
    actuals.c.legal_entity == bindparam("b_legal_entity"),
    one_of(actuals.c.actual_id, bindparam("b_actual_ids", type_=ValueList())),
)


def record_postings(connection: Connection, legal_entity: str, postings: Sequence[ActualPostingV1]) -> None:
    """Write each posting result onto its actual (of ``legal_entity``), in one statement."""
    update_rows(
        connection,
        actuals,
        [
            {
                "actual_id": posting.actual_id,
                "legal_entity": legal_entity,
                "voucher": posting.voucher,
                "posted_on": posting.posted_on,
                "accounting_amount": posting.accounting_amount,
                "accounting_currency": posting.accounting_currency,
                "exchange_rate": posting.exchange_rate,
                "posting_status": PostingStatus.POSTED.value,
            }
            for posting in postings
        ],
        key=("actual_id", "legal_entity"),
    )