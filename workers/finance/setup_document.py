"""The finance set-up document loaded by ``dualwrite setup FILE`` (JSON or YAML).

One entry per legal entity (accounting currency, chart of accounts, the project accounting
parameters, tax codes, workers, per-category account overrides) and the exchange rates. Every
account a parameter names must be in that company's chart of accounts.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.envelope import LegalEntity
from contracts.fields import Code, ExchangeRate, Name, Person
from contracts.money import CurrencyCode
from contracts.registry import describe_validation_error
from shared.errors import InvalidContract

AccountNumber = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")]
Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountDoc(Strict):
    account: AccountNumber
    name: Name


class TaxCodeDoc(Strict):
    tax_code: Code
    rate: Share = Field(description="0.20 for 20 %; amounts on expense lines include the tax")
    recoverable_share: Share = Field(description="1 when all the tax is recoverable, 0 when none is")
    tax_account: AccountNumber


class WorkerDoc(Strict):
    worker: Person
    vendor_account: AccountNumber
    manager: Person = Field(description="Approves the worker's expense lines that are on no project")


class CategoryAccountsDoc(Strict):
    expense_category: Code
    project_cost_account: AccountNumber | None = None
    expense_account: AccountNumber | None = None


class LegalEntityDoc(Strict):
    legal_entity: LegalEntity
    name: Name
    accounting_currency: CurrencyCode
    expense_integration_account: AccountNumber
    project_cost_account: AccountNumber
    employee_payables_account: AccountNumber
    ordinary_expense_account: AccountNumber
    accounts: list[AccountDoc] = Field(min_length=1)
    tax_codes: list[TaxCodeDoc] = Field(default_factory=list)
    workers: list[WorkerDoc] = Field(default_factory=list)
    category_accounts: list[CategoryAccountsDoc] = Field(default_factory=list)

    @model_validator(mode="after")
    def _accounts_exist(self) -> "LegalEntityDoc":
        chart = {a.account for a in self.accounts}
        named = {
            "expense_integration_account": self.expense_integration_account,
            "project_cost_account": self.project_cost_account,
            "employee_payables_account": self.employee_payables_account,
            "ordinary_expense_account": self.ordinary_expense_account,
            **{f"tax_codes[{t.tax_code}].tax_account": t.tax_account for t in self.tax_codes},
            **{f"category_accounts[{c.expense_category}].project_cost_account": c.project_cost_account for c in self.category_accounts if c.project_cost_account},
            **{f"category_accounts[{c.expense_category}].expense_account": c.expense_account for c in self.category_accounts if c.expense_account},
        }
        unknown = [f"{where}={account}" for where, account in named.items() if account not in chart]
        if unknown:
            raise ValueError(f"accounts not in the chart of accounts of {self.legal_entity}: {', '.join(unknown)}")
        return self


class ExchangeRateDoc(Strict):
    from_currency: CurrencyCode
    to_currency: CurrencyCode
    valid_from: dt.date
    rate: ExchangeRate


class SetupDocument(Strict):
    legal_entities: list[LegalEntityDoc] = Field(min_length=1)
    exchange_rates: list[ExchangeRateDoc] = Field(default_factory=list)


def read_setup_document(path: Path) -> SetupDocument:
    """Parse and validate a set-up file; InvalidContract names the offending field."""
    text = path.read_text(encoding="utf-8")
    try:
        raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise InvalidContract(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {_one_line(error)}") from None
    if not isinstance(raw, dict):
        names = {"list": "a list", "str": "a string", "int": "a number", "float": "a number", "bool": "true or false"}
        kind = "empty" if raw is None else names.get(type(raw).__name__, type(raw).__name__)
        raise InvalidContract(f"{path}: the document must be a mapping with legal_entities (and exchange_rates), not {kind}")
    try:
        return SetupDocument.model_validate(raw)
    except ValidationError as error:
        raise InvalidContract(f"{path}: {describe_validation_error(error)}") from None


def _one_line(error: Exception) -> str:
    """``expected ... but found '<stream end>' (line 2, column 1)``: a parser's complaint on one line."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if isinstance(error, yaml.YAMLError) and problem:
        return f"{problem}" + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else "")
    return " ".join(str(error).split())
