"""Finance reference data per legal entity: currency, accounts, tax codes, workers, exchange rates."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal

from shared.errors import BusinessRuleViolation


@dataclass(frozen=True)
class LegalEntity:
    """A company and the accounts its project expense postings use."""

    legal_entity: str
    name: str
    accounting_currency: str
    #: Project accounting parameter: where project expense cost waits for the integration journal.
    expense_integration_account: str
    #: Where the integration journal finally puts project cost (overridable per expense category).
    project_cost_account: str
    #: The vendor summary account of employee (worker) vendors.
    employee_payables_account: str
    #: Where cost of expense lines without a project goes (overridable per expense category).
    ordinary_expense_account: str


@dataclass(frozen=True)
class TaxCode:
    """A sales tax code; amounts on expense lines include the tax."""

    legal_entity: str
    tax_code: str
    rate: Decimal
    recoverable_share: Decimal
    tax_account: str


@dataclass(frozen=True)
class Worker:
    legal_entity: str
    worker: str
    vendor_account: str
    #: Approves the lines of this worker's reports that are on no project.
    manager: str


@dataclass(frozen=True)
class CategoryAccounts:
    """Per-category overrides of the legal entity's accounts."""

    legal_entity: str
    expense_category: str
    project_cost_account: str | None = None
    expense_account: str | None = None


@dataclass(frozen=True)
class ExchangeRate:
    from_currency: str
    to_currency: str
    valid_from: dt.date
    rate: Decimal


@dataclass
class ExchangeRates:
    """Rates by currency pair; the rate of a date is the latest one valid on or before it."""

    rates: list[ExchangeRate] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_pair: dict[tuple[str, str], list[ExchangeRate]] = {}
        for rate in sorted(self.rates, key=lambda r: r.valid_from):
            self._by_pair.setdefault((rate.from_currency, rate.to_currency), []).append(rate)

    def rate(self, from_currency: str, to_currency: str, on: dt.date) -> Decimal:
        if from_currency == to_currency:
            return Decimal(1)
        known = self._by_pair.get((from_currency, to_currency), [])
        index = bisect_right([r.valid_from for r in known], on)
        if index == 0:
            raise BusinessRuleViolation(f"no exchange rate {from_currency}->{to_currency} valid on {on.isoformat()}")
        return known[index - 1].rate


@dataclass(frozen=True)
class CompanySetup:
    """Everything posting needs to know about one legal entity."""

    company: LegalEntity
    tax_codes: dict[str, TaxCode]
    workers: dict[str, Worker]
    category_accounts: dict[str, CategoryAccounts]

    def project_cost_account(self, expense_category: str) -> str:
        override = self.category_accounts.get(expense_category)
        return (override and override.project_cost_account) or self.company.project_cost_account

    def expense_account(self, expense_category: str) -> str:
        override = self.category_accounts.get(expense_category)
        return (override and override.expense_account) or self.company.ordinary_expense_account

    def project_cost_accounts(self) -> set[str]:
        """Every account project cost may land on: the default and each category override."""
        overrides = {c.project_cost_account for c in self.category_accounts.values() if c.project_cost_account}
        return {self.company.project_cost_account} | overrides
