"""Import from staging and posting of the Project Operations Integration journal.

Import turns each staged actual into one journal line, offset account the expense integration
account, in journals grouped by legal entity and period with at most ``max_lines`` lines each.

Posting a journal clears the expense integration account: each cost line debits the project cost
account and credits the expense integration account by the accounting amount the expense was
posted with, so the integration account returns to exactly zero. Every line also becomes a project
subledger transaction: cost for cost actuals, unbilled revenue for unbilled sales actuals (these
move no ledger amount; revenue is recognised later, at invoicing).

Records made per actual are NamedTuples, journals and postings dataclasses (see ``domain.ledger``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from contracts.fields import TransactionType
from workers.finance.domain.ledger import LedgerLine
from workers.finance.domain.reference import CompanySetup

DEFAULT_MAX_LINES = 200


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"
    YEAR = "year"
    ALL = "all"


def period_of(date: dt.date, grouping: Period) -> str:
    if grouping is Period.DAY:
        return date.isoformat()
    if grouping is Period.MONTH:
        return f"{date.year:04d}-{date.month:02d}"
    if grouping is Period.YEAR:
        return f"{date.year:04d}"
    return "all"


class StagedActual(NamedTuple):
    actual_id: str
    legal_entity: str
    expense_id: str
    project_id: str
    expense_category: str
    transaction_type: TransactionType
    date: dt.date
    amount: Decimal
    currency: str
    accounting_amount: Decimal
    accounting_currency: str
    exchange_rate: Decimal


class JournalLine(NamedTuple):
    journal_id: str
    line_number: int
    actual: StagedActual
    #: Project cost account for cost lines; None for sales lines, which move no ledger amount.
    account: str | None
    offset_account: str


@dataclass(frozen=True)
class Journal:
    journal_id: str
    legal_entity: str
    period: str
    lines: tuple[JournalLine, ...]


class ProjectTransaction(NamedTuple):
    legal_entity: str
    actual_id: str
    project_id: str
    expense_category: str
    kind: str
    date: dt.date
    amount: Decimal
    currency: str
    accounting_amount: Decimal
    accounting_currency: str
    voucher: str
    journal_id: str


class ActualPostingResult(NamedTuple):
    legal_entity: str
    actual_id: str
    voucher: str
    posted_on: dt.date
    accounting_amount: Decimal
    accounting_currency: str
    exchange_rate: Decimal


@dataclass(frozen=True)
class JournalPosting:
    journal: Journal
    voucher: str
    ledger: tuple[LedgerLine, ...]
    project_transactions: tuple[ProjectTransaction, ...]
    results: tuple[ActualPostingResult, ...]


def build_journals(
    actuals: Iterable[StagedActual],
    setups: dict[str, CompanySetup],
    *,
    grouping: Period,
    max_lines: int = DEFAULT_MAX_LINES,
    new_journal_id: Callable[[str, str], str],
) -> list[Journal]:
    """Group staged actuals into journals: per legal entity and period, ``max_lines`` at most each."""
    groups: dict[tuple[str, str], list[StagedActual]] = {}
    for actual in sorted(actuals, key=lambda a: (a.legal_entity, a.date, a.actual_id)):
        groups.setdefault((actual.legal_entity, period_of(actual.date, grouping)), []).append(actual)
    journals = []
    for (legal_entity, period), members in groups.items():
        setup = setups[legal_entity]
        for start in range(0, len(members), max_lines):
            journal_id = new_journal_id(legal_entity, period)
            lines = tuple(
                JournalLine(
                    journal_id=journal_id,
                    line_number=number,
                    actual=actual,
                    account=setup.project_cost_account(actual.expense_category)
                    if actual.transaction_type is TransactionType.COST
                    else None,
                    offset_account=setup.company.expense_integration_account,
                )
                for number, actual in enumerate(members[start : start + max_lines], start=1)
            )
            journals.append(Journal(journal_id, legal_entity, period, lines))
    return journals


def post_journal(journal: Journal, posting_date: dt.date) -> JournalPosting:
    voucher = f"PIJ-{journal.journal_id}"
    ledger: list[LedgerLine] = []
    transactions, results = [], []
    for line in journal.lines:
        actual = line.actual
        if line.account is not None:
            for account, sign in ((line.account, 1), (line.offset_account, -1)):
                ledger.append(
                    LedgerLine(
                        legal_entity=journal.legal_entity,
                        voucher=voucher,
                        line_number=len(ledger) + 1,
                        account=account,
                        amount=sign * actual.accounting_amount,
                        currency=actual.accounting_currency,
                        date=posting_date,
                        transaction_amount=sign * actual.amount,
                        transaction_currency=actual.currency,
                        project_id=actual.project_id,
                        expense_category=actual.expense_category,
                        source="integration_journal",
                        source_id=actual.actual_id,
                    )
                )
        kind = "cost" if actual.transaction_type is TransactionType.COST else "unbilled_revenue"
        transactions.append(
            ProjectTransaction(
                journal.legal_entity, actual.actual_id, actual.project_id, actual.expense_category, kind, actual.date,
                actual.amount, actual.currency, actual.accounting_amount, actual.accounting_currency, voucher, journal.journal_id,
            )
        )
        results.append(
            ActualPostingResult(
                journal.legal_entity, actual.actual_id, voucher, posting_date, actual.accounting_amount,
                actual.accounting_currency, actual.exchange_rate,
            )
        )
    return JournalPosting(journal, voucher, tuple(ledger), tuple(transactions), tuple(results))
