"""The actuals staging table and the Project Operations Integration journal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from contracts.fields import TransactionType
from shared.database import as_row, insert_ignoring_duplicates, insert_rows, supports_skip_locked, update_rows
from shared.sql_lists import ValueList, one_of
from workers.finance.domain.integration_journal import Journal, JournalLine, JournalPosting, StagedActual
from workers.finance.tables import (
    actuals_staging,
    integration_journal_lines,
    integration_journals,
    ledger_entries,
    project_transactions,
)

STAGED, IMPORTED = "staged", "imported"
OPEN, POSTED = "open", "posted"

#: The staging columns in StagedActual's order: a row read is an actual once its type is a member.
_STAGED_COLUMNS = [actuals_staging.c[name] for name in StagedActual._fields]
_TRANSACTION_TYPE = StagedActual._fields.index("transaction_type")


def stage_actuals(connection: Connection, actuals: list[StagedActual], staged_at: datetime) -> int:
    """Land actuals in staging; an actual already staged (or imported) is left alone."""
    return insert_ignoring_duplicates(
        connection, actuals_staging, [{**as_row(a), "status": STAGED, "staged_at": staged_at} for a in actuals]
    )


def take_staged(connection: Connection, limit: int) -> list[StagedActual]:
    """Staged actuals, locked for this transaction; another importer skips them (PostgreSQL)."""
    query = (
        select(*_STAGED_COLUMNS)
        .where(actuals_staging.c.status == STAGED)
        .order_by(actuals_staging.c.staged_at, actuals_staging.c.actual_id)
        .limit(limit)
    )
    if supports_skip_locked(connection):
        query = query.with_for_update(skip_locked=True)
    return [_staged(row) for row in connection.execute(query)]


def save_journals(connection: Connection, journals: list[Journal], created_at: datetime) -> None:
    insert_rows(
        connection,
        integration_journals,
        [
            {"journal_id": j.journal_id, "legal_entity": j.legal_entity, "period": j.period, "status": OPEN,
             "line_count": len(j.lines), "created_at": created_at}
            for j in journals
        ],
    )
    insert_rows(connection, integration_journal_lines, [_line_row(line, j) for j in journals for line in j.lines])
    update_rows(
        connection,
        actuals_staging,
        [
            {"actual_id": line.actual.actual_id, "status": IMPORTED, "journal_id": j.journal_id}
            for j in journals
            for line in j.lines
        ],
        key=("actual_id",),
    )


def lock_open_journals(connection: Connection, journal_ids: list[str]) -> set[str]:
    """Those of the journals still open, locked for this transaction; another poster skips them (PostgreSQL)."""
    query = _OPEN_JOURNALS_LOCKED if supports_skip_locked(connection) else _OPEN_JOURNALS
    return set(connection.scalars(query, {"b_journal_ids": journal_ids}))


_OPEN_JOURNALS = select(integration_journals.c.journal_id).where(
    integration_journals.c.status == OPEN,
    one_of(integration_journals.c.journal_id, bindparam("b_journal_ids", type_=ValueList())),
)
_OPEN_JOURNALS_LOCKED = _OPEN_JOURNALS.with_for_update(skip_locked=True)


def take_open_journals(connection: Connection, journal_ids: Iterable[str] | None, limit: int) -> list[Journal]:
    """Open journals (these, or any), locked for this transaction; another poster skips them."""
    query = select(integration_journals).where(integration_journals.c.status == OPEN).order_by(integration_journals.c.created_at).limit(limit)
    if journal_ids is not None:
        query = query.where(integration_journals.c.journal_id.in_(sorted(journal_ids)))
    if supports_skip_locked(connection):
        query = query.with_for_update(skip_locked=True)
    headers = connection.execute(query).mappings().all()
    if not headers:
        return []
    lines: dict[str, list[JournalLine]] = {}
    for row in connection.execute(
        select(*_JOURNAL_LINE_COLUMNS)
        .where(integration_journal_lines.c.journal_id.in_([h["journal_id"] for h in headers]))
        .order_by(integration_journal_lines.c.journal_id, integration_journal_lines.c.line_number)
    ):
        journal_id, line_number, account, offset_account, *actual = row
        lines.setdefault(journal_id, []).append(JournalLine(journal_id, line_number, _staged(actual), account, offset_account))
    return [Journal(h["journal_id"], h["legal_entity"], h["period"], tuple(lines.get(h["journal_id"], ()))) for h in headers]


#: A journal line's own columns, then its actual's in StagedActual's order.
_JOURNAL_LINE_COLUMNS = [
    integration_journal_lines.c[name]
    for name in ("journal_id", "line_number", "account", "offset_account", *StagedActual._fields)
]


def save_journal_postings(connection: Connection, postings: list[JournalPosting], posted_at: datetime) -> None:
    insert_rows(connection, ledger_entries, [as_row(line) for p in postings for line in p.ledger])
    insert_rows(connection, project_transactions, [as_row(t) for p in postings for t in p.project_transactions])
    update_rows(
        connection,
        integration_journals,
        [{"journal_id": p.journal.journal_id, "status": POSTED, "voucher": p.voucher, "posted_at": posted_at} for p in postings],
        key=("journal_id",),
    )


def _staged(values: Sequence[Any]) -> StagedActual:
    """An actual from its columns in StagedActual's order (the type read as the option value it is)."""
    actual = list(values)
    actual[_TRANSACTION_TYPE] = TransactionType(actual[_TRANSACTION_TYPE])
    return StagedActual._make(actual)


def _line_row(line: JournalLine, journal: Journal) -> dict:
    actual = line.actual
    return {
        "journal_id": journal.journal_id,
        "line_number": line.line_number,
        "actual_id": actual.actual_id,
        "legal_entity": actual.legal_entity,
        "expense_id": actual.expense_id,
        "project_id": actual.project_id,
        "expense_category": actual.expense_category,
        "transaction_type": int(actual.transaction_type),
        "date": actual.date,
        "amount": actual.amount,
        "currency": actual.currency,
        "accounting_amount": actual.accounting_amount,
        "accounting_currency": actual.accounting_currency,
        "exchange_rate": actual.exchange_rate,
        "account": line.account,
        "offset_account": line.offset_account,
    }
