"""Expense records and actuals, read and written in bulk: one statement per batch, never one per row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from contracts.actuals import ActualPostingV1
from contracts.expenses import ExpenseV1
from shared.database import update_rows, upsert
from shared.sql_lists import ValueList, one_of
from workers.dataverse.domain.actuals import Actual, PostingStatus
from workers.dataverse.domain.expenses import ApprovalStatus
from workers.dataverse.tables import actuals, expenses

#: Columns finance masters; the approval status is Dataverse's own and survives a redelivery.
_FINANCE_COLUMNS = [c.name for c in expenses.columns if c.name not in ("expense_id", "approval_status")]


def expense_owners(connection: Connection, expense_ids: Iterable[str]) -> dict[str, str]:
    """Expense id -> owning company, for those of ``expense_ids`` already recorded."""
    rows = connection.execute(_EXPENSE_OWNERS, {"b_expense_ids": sorted(set(expense_ids))}).all()
    return dict(rows)  # (expense id, company) pairs


_EXPENSE_OWNERS = select(expenses.c.expense_id, expenses.c.legal_entity).where(
    one_of(expenses.c.expense_id, bindparam("b_expense_ids", type_=ValueList()))
)


def save_expenses(connection: Connection, legal_entity: str, lines: Sequence[ExpenseV1]) -> None:
    """Record ``legal_entity``'s posted lines, new ones pending approval; a line recorded before
    takes finance's columns again and keeps its approval status.

    The rows are the decoded lines' own fields (``vars``: validated once, when the message was
    decoded, and named as the table's columns) with the company and the status beside them.
    """
    pending = ApprovalStatus.PENDING.value
    rows = [{"legal_entity": legal_entity, **vars(line), "approval_status": pending} for line in lines]
    upsert(connection, expenses, rows, key=("expense_id",), update=_FINANCE_COLUMNS)


def mark_approved(connection: Connection, expense_ids: Sequence[str]) -> None:
    if expense_ids:
        connection.execute(_MARK_APPROVED, {"b_expense_ids": sorted(set(expense_ids))})


_MARK_APPROVED = (
    expenses.update()
    .where(one_of(expenses.c.expense_id, bindparam("b_expense_ids", type_=ValueList())))
    .values(approval_status=ApprovalStatus.APPROVED.value)
)


def save_actuals(connection: Connection, new: Sequence[Actual]) -> None:
    """Insert the actuals whose ids are new; an actual written before (a re-run approval makes the
    same ids) is left as it is. Nothing is counted, so the statement sends no row back."""
    upsert(connection, actuals, [_actual_row(actual) for actual in new], key=("actual_id",), update=())


def _actual_row(actual: Actual) -> dict[str, Any]:
    """An actual as a row of the ``actuals`` table: its fields, with the enum members as their values
    (drivers disagree on enums: psycopg writes a member's name)."""
    row = actual._asdict()
    row["transaction_classification"] = int(actual.transaction_classification)
    row["transaction_type"] = int(actual.transaction_type)
    row["posting_status"] = actual.posting_status.value
    return row


def known_actuals(connection: Connection, legal_entity: str, actual_ids: Iterable[str]) -> frozenset[str]:
    """Those of ``actual_ids`` that are actuals of ``legal_entity``."""
    found = connection.scalars(_KNOWN_ACTUALS, {"b_legal_entity": legal_entity, "b_actual_ids": sorted(set(actual_ids))})
    return frozenset(found.all())  # all(): one fetch, not one per row


_KNOWN_ACTUALS = select(actuals.c.actual_id).where(
    actuals.c.legal_entity == bindparam("b_legal_entity"),
    one_of(actuals.c.actual_id, bindparam("b_actual_ids", type_=ValueList())),
)


def record_postings(connection: Connection, legal_entity: str, postings: Sequence[ActualPostingV1]) -> None:
    """Write each posting result onto its actual (of ``legal_entity``), in one statement."""
    posted = PostingStatus.POSTED.value
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
                "posting_status": posted,
            }
            for posting in postings
        ],
        key=("actual_id", "legal_entity"),
    )
