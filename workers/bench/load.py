"""The generated load: finance set-up, categories, projects and expense reports. Pure, no I/O.

Everything is deterministic for a given seed, so two runs of the same command post the same
amounts. Every line is on a project (so every line travels the whole flow and
``reports x lines`` is the count reconcile must reach); lines mix tax codes (fully, half and not
recoverable, and none), categories (one with its own project cost account) and, every fifth line,
a foreign currency.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from workers.finance.setup_document import SetupDocument

#: Legal entities the bench can use, each in its own accounting currency (``--legal-entities`` takes the first N).
COMPANIES: tuple[tuple[str, str, str], ...] = (
    ("USPM", "USD", "Contoso Projects US"),
    ("DEMF", "EUR", "Contoso Projekt GmbH"),
    ("GBPS", "GBP", "Contoso Projects UK"),
    ("CHZH", "CHF", "Contoso Projekte AG"),
    ("SESB", "SEK", "Contoso Projekt AB"),
    ("CAON", "CAD", "Contoso Projects Canada"),
    ("JPTK", "JPY", "Contoso Projects Japan"),
    ("AUSY", "AUD", "Contoso Projects Australia"),
)

#: Value of one unit in USD, to derive every cross rate from.
USD_VALUE: dict[str, Decimal] = {
    "USD": Decimal("1"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CHF": Decimal("1.13"),
    "SEK": Decimal("0.095"), "CAD": Decimal("0.73"), "JPY": Decimal("0.0067"), "AUD": Decimal("0.66"),
}

#: (transaction category, name, expense type): created in Dataverse, enabled for expense in finance.
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("HOTEL", "Hotel", "hotel"),
    ("AIRFARE", "Airfare", "airline"),
    ("RAIL", "Rail", "transport"),
    ("MEALS", "Meals", "meals"),
    ("TAXI", "Taxi", "transport"),
)

#: (tax code, rate, recoverable share): fully recoverable, half recoverable, not recoverable.
TAX_CODES: tuple[tuple[str, str, str], ...] = (("VAT-FULL", "0.20", "1"), ("VAT-HALF", "0.10", "0.5"), ("SALES", "0.08", "0"))
#: The tax code of line n is TAX_CYCLE[n % 4]: every fourth line carries no tax.
TAX_CYCLE: tuple[str | None, ...] = (None, "VAT-FULL", "VAT-HALF", "SALES")

WORKERS_PER_COMPANY = 6
RATES_VALID_FROM = dt.date(2026, 1, 1)
FIRST_LINE_DATE = dt.date(2026, 11, 1)

INTEGRATION, PROJECT_COST, TRAVEL_COST, PAYABLES, ORDINARY, TAX = "189900", "600100", "600200", "200510", "606100", "154000"


@dataclass(frozen=True)
class Company:
    legal_entity: str
    currency: str
    name: str

    def worker(self, n: int) -> str:
        return f"emp{n}-{self.legal_entity.lower()}"

    def manager(self) -> str:
        return f"mgr-{self.legal_entity.lower()}"


@dataclass(frozen=True)
class BenchProject:
    project_id: str
    legal_entity: str
    project_manager: str
    billable: bool


@dataclass(frozen=True)
class BenchReport:
    """One generated expense report: where it goes, its lines (contract rows) and who approves it."""

    legal_entity: str
    report_id: str
    worker: str
    lines: tuple[dict[str, Any], ...]
    approvers: tuple[str, ...] = field(default=())

    def create_row(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "worker": self.worker, "lines": list(self.lines)}


def companies(count: int) -> list[Company]:
    if not 1 <= count <= len(COMPANIES):
        raise ValueError(f"between 1 and {len(COMPANIES)} legal entities, not {count}")
    return [Company(le, currency, name) for le, currency, name in COMPANIES[:count]]


def foreign_currency(company: Company, all_companies: list[Company]) -> str:
    """The currency of a company's foreign-currency lines: the next company's, or EUR/USD with one company."""
    others = [c.currency for c in all_companies if c.currency != company.currency]
    if others:
        index = [c.legal_entity for c in all_companies].index(company.legal_entity)
        return others[index % len(others)]
    return "EUR" if company.currency != "EUR" else "USD"


def exchange_rate(from_currency: str, to_currency: str) -> Decimal:
    return (USD_VALUE[from_currency] / USD_VALUE[to_currency]).quantize(Decimal("0.00000001"))


def setup_document(all_companies: list[Company]) -> SetupDocument:
    """The finance set-up of every company, and the rates between every pair of currencies in use."""
    entities = []
    for company in all_companies:
        entities.append(
            {
                "legal_entity": company.legal_entity,
                "name": company.name,
                "accounting_currency": company.currency,
                "expense_integration_account": INTEGRATION,
                "project_cost_account": PROJECT_COST,
                "employee_payables_account": PAYABLES,
                "ordinary_expense_account": ORDINARY,
                "accounts": [
                    {"account": INTEGRATION, "name": "Project expense integration"},
                    {"account": PROJECT_COST, "name": "Project cost - expenses"},
                    {"account": TRAVEL_COST, "name": "Project cost - travel"},
                    {"account": PAYABLES, "name": "Employee expense payables"},
                    {"account": ORDINARY, "name": "Travel and entertainment"},
                    {"account": TAX, "name": "Input tax"},
                ],
                "tax_codes": [
                    {"tax_code": code, "rate": rate, "recoverable_share": share, "tax_account": TAX}
                    for code, rate, share in TAX_CODES
                ],
                "workers": [
                    {"worker": company.worker(n), "vendor_account": f"V-{company.legal_entity}-{n}", "manager": company.manager()}
                    for n in range(1, WORKERS_PER_COMPANY + 1)
                ],
                "category_accounts": [{"expense_category": "AIRFARE", "project_cost_account": TRAVEL_COST}],
            }
        )
    currencies = sorted({c.currency for c in all_companies} | {foreign_currency(c, all_companies) for c in all_companies})
    rates = [
        {"from_currency": a, "to_currency": b, "valid_from": RATES_VALID_FROM.isoformat(), "rate": str(exchange_rate(a, b))}
        for a in currencies
        for b in currencies
        if a != b
    ]
    return SetupDocument.model_validate({"legal_entities": entities, "exchange_rates": rates})


def transaction_category_rows() -> list[dict[str, Any]]:
    return [{"category": code, "name": name} for code, name, _ in CATEGORIES]


def enable_expense_rows() -> list[dict[str, Any]]:
    return [{"category": code, "expense_type": kind} for code, _, kind in CATEGORIES]


def expense_category_rows() -> list[dict[str, Any]]:
    """The same categories in every company (each company gets its own records)."""
    return [{"expense_category": code, "name": name, "shared_category": code} for code, name, _ in CATEGORIES]


def projects(company: Company, count: int) -> list[BenchProject]:
    """``count`` projects of the company, each with its own manager; odd-numbered ones are billable."""
    return [
        BenchProject(
            project_id=f"PRJ-{company.legal_entity}-{n:03d}",
            legal_entity=company.legal_entity,
            project_manager=f"pm{n}-{company.legal_entity.lower()}",
            billable=n % 2 == 1,
        )
        for n in range(1, count + 1)
    ]


def project_rows(company_projects: list[BenchProject]) -> list[dict[str, Any]]:
    return [
        {"project_id": p.project_id, "name": f"Bench project {p.project_id}", "project_manager": p.project_manager, "billable": p.billable}
        for p in company_projects
    ]


def generate_reports(
    all_companies: list[Company],
    projects_by_company: dict[str, list[BenchProject]],
    count: int,
    lines: int,
    *,
    prefix: str,
    seed: int = 20261101,
) -> list[BenchReport]:
    """``count`` reports of ``lines`` project lines each, spread round-robin over the companies.

    Report ``n`` puts its lines on two neighbouring projects of its company (one with a single
    project), so it needs one or two project managers' approval. Ids are ``<prefix><n:06d>``.
    """
    rng = random.Random(f"{seed}/{prefix}")
    reports = []
    for n in range(1, count + 1):
        company = all_companies[(n - 1) % len(all_companies)]
        company_projects = projects_by_company[company.legal_entity]
        pair = [company_projects[(n + k) % len(company_projects)] for k in (0, 1)]
        foreign = foreign_currency(company, all_companies)
        report_lines = []
        for i in range(1, lines + 1):
            project = pair[i % 2]
            tax_code = TAX_CYCLE[(n + i) % len(TAX_CYCLE)]
            line: dict[str, Any] = {
                "line_number": i,
                "project_id": project.project_id,
                "expense_category": CATEGORIES[(n + i) % len(CATEGORIES)][0],
                "date": (FIRST_LINE_DATE + dt.timedelta(days=(n + i) % 28)).isoformat(),
                "amount": str(Decimal(rng.randint(500, 60_000)) / 100),
                "currency": foreign if i % 5 == 0 else company.currency,
            }
            if tax_code is not None:
                line["tax_code"] = tax_code
            report_lines.append(line)
        approvers = sorted({pair[i % 2].project_manager for i in range(1, lines + 1)})
        reports.append(
            BenchReport(
                legal_entity=company.legal_entity,
                report_id=f"{prefix}{n:06d}",
                worker=company.worker(1 + (n - 1) // len(all_companies) % WORKERS_PER_COMPANY),
                lines=tuple(report_lines),
                approvers=tuple(approvers),
            )
        )
    return reports


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive groups of at most ``size``."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [items[start : start + size] for start in range(0, len(items), size)]


def reports_per_create_message(lines: int, max_lines: int = 500) -> int:
    """How many reports one create message carries: about ``max_lines`` lines, at least one report."""
    return max(1, max_lines // lines)


def report_of_expense(expense_id: str) -> str:
    """``<report id>-<line number>`` (the msdyn_expenses expense id) -> the report id."""
    report_id, _, line = expense_id.rpartition("-")
    if not report_id or not line.isdigit():
        raise ValueError(f"{expense_id!r} is not an expense id of the form <report id>-<line number>")
    return report_id
