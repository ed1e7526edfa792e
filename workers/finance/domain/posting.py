"""The posting rules of project expense reports: one balanced voucher per report.

Line amounts are what the employee paid, sales tax included. Per line, in its own currency:

    tax             = amount x rate / (1 + rate), rounded to the cent
    recoverable tax = tax x recoverable share, rounded to the cent
    project cost    = amount - recoverable tax   (net + non-recoverable tax)

then in accounting currency, at the exchange rate of the line date:

    amount (acc)          = amount x exchange rate, rounded to the cent
    recoverable tax (acc) = recoverable tax x exchange rate, rounded to the cent
    project cost (acc)    = amount (acc) - recoverable tax (acc)

so every voucher balances to the cent by construction. The voucher debits project cost of project
lines to the **expense integration account** (not the project cost account: the integration
journal moves it there later), cost of other lines to the category's expense account, recoverable
tax to the tax code's account, and credits the total owed to the employee to the employee
payables account, with one vendor subledger entry for the worker's vendor account.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from contracts.money import to_cents
from shared.errors import BusinessRuleViolation, NotYet, Refusals
from workers.finance.domain.expense_reports import ExpenseLine, ExpenseReport, ReportStatus
from workers.finance.domain.ledger import ZERO, LedgerLine
from workers.finance.domain.reference import CompanySetup, ExchangeRates


class PostedLine(NamedTuple):
    """A line's amounts as posted (a NamedTuple, as every per-row record: see ``domain.ledger``)."""

    line: ExpenseLine
    exchange_rate: Decimal
    tax_amount: Decimal
    recoverable_tax: Decimal
    project_cost: Decimal
    amount_accounting: Decimal
    recoverable_tax_accounting: Decimal
    project_cost_accounting: Decimal


class TaxEntry(NamedTuple):
    """A tax subledger transaction (one per taxed line)."""

    legal_entity: str
    voucher: str
    report_id: str
    line_number: int
    tax_code: str
    currency: str
    base_amount: Decimal
    tax_amount: Decimal
    recoverable_amount: Decimal
    non_recoverable_amount: Decimal
    recoverable_accounting: Decimal
    date: dt.date


class VendorEntry(NamedTuple):
    """The vendor subledger transaction: what the company owes the employee, in accounting currency."""

    legal_entity: str
    voucher: str
    vendor_account: str
    worker: str
    report_id: str
    date: dt.date
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class ExpensePosting:
    report: ExpenseReport
    voucher: str
    date: dt.date
    lines: tuple[PostedLine, ...]
    ledger: tuple[LedgerLine, ...]
    tax: tuple[TaxEntry, ...]
    vendor: VendorEntry


def voucher_of(report: ExpenseReport) -> str:
    return f"EXP-{report.report_id}"


def post_expense_report(report: ExpenseReport, setup: CompanySetup, rates: ExchangeRates, posting_date: dt.date) -> ExpensePosting:
    if report.status in (ReportStatus.DRAFT, ReportStatus.SUBMITTED):
        raise NotYet(f"report {report.report_id} is {report.status}, not approved yet")
    if report.status is not ReportStatus.APPROVED:
        raise BusinessRuleViolation(f"report {report.report_id} is {report.status}; only an approved report can be posted")
    currency = setup.company.accounting_currency
    posted = []
    refusals = Refusals(f"posting of report {report.report_id}")
    for line in report.lines:
        with refusals.row(f"line {line.line_number}"):
            posted.append(_post_line(line, setup, rates.rate(line.currency, currency, line.date)))
    refusals.raise_if_any()
    voucher = voucher_of(report)
    ledger = _ledger_lines(report, posted, setup, voucher, posting_date)
    owed = sum((p.amount_accounting for p in posted), ZERO)
    worker = setup.workers[report.worker]
    vendor = VendorEntry(report.legal_entity, voucher, worker.vendor_account, report.worker, report.report_id, posting_date, owed, currency)
    tax = tuple(_tax_entry(p, voucher) for p in posted if p.line.tax_code is not None)
    return ExpensePosting(report, voucher, posting_date, tuple(posted), ledger, tax, vendor)


def _post_line(line: ExpenseLine, setup: CompanySetup, rate: Decimal) -> PostedLine:
    tax_code = setup.tax_codes.get(line.tax_code) if line.tax_code else None
    tax = to_cents(line.amount * tax_code.rate / (1 + tax_code.rate)) if tax_code else ZERO
    recoverable = to_cents(tax * tax_code.recoverable_share) if tax_code else ZERO
    amount_accounting = to_cents(line.amount * rate)
    recoverable_accounting = to_cents(recoverable * rate)
    return PostedLine(
        line=line,
        exchange_rate=rate,
        tax_amount=tax,
        recoverable_tax=recoverable,
        project_cost=line.amount - recoverable,
        amount_accounting=amount_accounting,
        recoverable_tax_accounting=recoverable_accounting,
        project_cost_accounting=amount_accounting - recoverable_accounting,
    )


def _ledger_lines(
    report: ExpenseReport, posted: list[PostedLine], setup: CompanySetup, voucher: str, date: dt.date
) -> tuple[LedgerLine, ...]:
    company = setup.company
    lines: list[LedgerLine] = []

    def add(account: str, amount: Decimal, transaction_amount: Decimal, transaction_currency: str, line: ExpenseLine | None) -> None:
        lines.append(
            LedgerLine(
                legal_entity=report.legal_entity,
                voucher=voucher,
                line_number=len(lines) + 1,
                account=account,
                amount=amount,
                currency=company.accounting_currency,
                date=date,
                transaction_amount=transaction_amount,
                transaction_currency=transaction_currency,
                project_id=line.project_id if line else None,
                expense_category=line.expense_category if line else None,
                source="expense_report",
                source_id=f"{report.report_id}/{line.line_number}" if line else report.report_id,
            )
        )

    for p in posted:
        cost_account = company.expense_integration_account if p.line.project_id else setup.expense_account(p.line.expense_category)
        add(cost_account, p.project_cost_accounting, p.project_cost, p.line.currency, p.line)
        if p.recoverable_tax_accounting:
            add(setup.tax_codes[p.line.tax_code].tax_account, p.recoverable_tax_accounting, p.recoverable_tax, p.line.currency, p.line)
    owed = sum((p.amount_accounting for p in posted), ZERO)
    add(company.employee_payables_account, -owed, -owed, company.accounting_currency, None)
    return tuple(lines)


def _tax_entry(p: PostedLine, voucher: str) -> TaxEntry:
    line = p.line
    return TaxEntry(
        legal_entity=line.legal_entity,
        voucher=voucher,
        report_id=line.report_id,
        line_number=line.line_number,
        tax_code=line.tax_code or "",
        currency=line.currency,
        base_amount=line.amount - p.tax_amount,
        tax_amount=p.tax_amount,
        recoverable_amount=p.recoverable_tax,
        non_recoverable_amount=p.tax_amount - p.recoverable_tax,
        recoverable_accounting=p.recoverable_tax_accounting,
        date=line.date,
    )
