"""The two demo companies as plain domain objects, for the finance unit tests (no database).

They mirror ``workers/demo_data/setup.yaml``: USPM keeps its books in USD, DEMF in EUR; both
park project expense cost on 189900 (expense integration) and move it to 600100 (project cost;
USPM sends AIRFARE to 600200), pay employees through 200510 and book cost outside projects on
606100.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from contracts.fields import ProjectStatus
from workers.finance.domain.expense_reports import ExpenseLine, ExpenseReport, FinanceProject, ReportStatus
from workers.finance.domain.reference import (
    CategoryAccounts,
    CompanySetup,
    ExchangeRate,
    ExchangeRates,
    LegalEntity,
    TaxCode,
    Worker,
)

INTEGRATION, PROJECT_COST, TRAVEL_COST, PAYABLES, ORDINARY = "189900", "600100", "600200", "200510", "606100"
US_TAX, DE_TAX = "140200", "154000"

USPM = CompanySetup(
    company=LegalEntity("USPM", "Contoso Project Management US", "USD", INTEGRATION, PROJECT_COST, PAYABLES, ORDINARY),
    tax_codes={
        "US-HOTEL": TaxCode("USPM", "US-HOTEL", Decimal("0.15"), Decimal("0"), US_TAX),
        "CA-GST": TaxCode("USPM", "CA-GST", Decimal("0.05"), Decimal("1"), US_TAX),
    },
    workers={
        "alice": Worker("USPM", "alice", "V-ALICE", "carol"),
        "bob": Worker("USPM", "bob", "V-BOB", "carol"),
    },
    category_accounts={"AIRFARE": CategoryAccounts("USPM", "AIRFARE", project_cost_account=TRAVEL_COST)},
)

DEMF = CompanySetup(
    company=LegalEntity("DEMF", "Contoso Projekt GmbH", "EUR", INTEGRATION, PROJECT_COST, PAYABLES, ORDINARY),
    tax_codes={
        "DE-VAT7": TaxCode("DEMF", "DE-VAT7", Decimal("0.07"), Decimal("1"), DE_TAX),
        "DE-VAT19": TaxCode("DEMF", "DE-VAT19", Decimal("0.19"), Decimal("1"), DE_TAX),
        "DE-ENT19": TaxCode("DEMF", "DE-ENT19", Decimal("0.19"), Decimal("0.7"), DE_TAX),
    },
    workers={"lena": Worker("DEMF", "lena", "V-LENA", "klaus")},
    category_accounts={},
)

SETUPS = {"USPM": USPM, "DEMF": DEMF}

RATES = ExchangeRates(
    [
        ExchangeRate("EUR", "USD", dt.date(2026, 1, 1), Decimal("1.0850")),
        ExchangeRate("EUR", "USD", dt.date(2026, 11, 1), Decimal("1.0920")),
        ExchangeRate("CAD", "USD", dt.date(2026, 1, 1), Decimal("0.7300")),
        ExchangeRate("USD", "EUR", dt.date(2026, 1, 1), Decimal("0.9200")),
    ]
)

PROJECTS = {
    "P-US": FinanceProject("USPM", "P-US", "Contoso US roll-out", "maria", billable=True, status=ProjectStatus.ACTIVE),
    "P-US2": FinanceProject("USPM", "P-US2", "Second US project", "tom", billable=False, status=ProjectStatus.ACTIVE),
    "P-DE": FinanceProject("DEMF", "P-DE", "Rollout Deutschland", "jonas", billable=False, status=ProjectStatus.ACTIVE),
}

US_CATEGORIES = frozenset({"HOTEL", "AIRFARE", "MEALS"})
DE_CATEGORIES = frozenset({"HOTEL", "MEALS", "ENTERTAIN"})

NOV_3 = dt.date(2026, 11, 3)
POSTED_ON = dt.date(2026, 11, 20)


def line(
    number: int,
    amount: str,
    currency: str = "USD",
    *,
    project: str | None = "P-US",
    category: str = "HOTEL",
    tax: str | None = None,
    date: dt.date = NOV_3,
    legal_entity: str = "USPM",
    report_id: str = "R-1",
    approved_by: str | None = None,
) -> ExpenseLine:
    return ExpenseLine(
        legal_entity=legal_entity,
        report_id=report_id,
        line_number=number,
        project_id=project,
        expense_category=category,
        date=date,
        amount=Decimal(amount),
        currency=currency,
        tax_code=tax,
        approved_by=approved_by,
    )


def report(
    *lines: ExpenseLine,
    status: ReportStatus = ReportStatus.APPROVED,
    worker: str = "alice",
    legal_entity: str = "USPM",
    report_id: str = "R-1",
) -> ExpenseReport:
    return ExpenseReport(legal_entity=legal_entity, report_id=report_id, worker=worker, status=status, lines=tuple(lines))
