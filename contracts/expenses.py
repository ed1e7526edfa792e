"""``msdyn_expenses``: posted project expense lines, from finance to Dataverse."""

from __future__ import annotations

from typing import ClassVar

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, ExchangeRate, LineNumber, Person, Reference
from contracts.money import Amount, CurrencyCode
from contracts.registry import Contract, Kind, Scope
from contracts.wire import Date


class ExpenseV1(Row):
    expense_id: Reference
    report_id: Code
    line_number: LineNumber
    project_id: Code
    expense_category: Code
    worker: Person
    date: Date
    amount: Amount
    currency: CurrencyCode
    project_cost: Amount
    accounting_currency: CurrencyCode
    project_cost_accounting: Amount
    exchange_rate: ExchangeRate
    voucher: Reference


class ExpensesV1(Batch):
    """The project lines of one posted expense report.

    ``amount`` is what the employee paid (tax included), ``project_cost`` the cost to the project
    (net of recoverable tax) in the line's currency, ``project_cost_accounting`` the same in the
    legal entity's accounting currency as it was posted to the expense integration account.
    """

    key_fields: ClassVar[tuple[str, ...]] = ("expense_id",)
    rows: Rows[ExpenseV1]


MSDYN_EXPENSES = Contract(
    name="msdyn_expenses",
    kind=Kind.TABLE_MAP,
    scope=Scope.LEGAL_ENTITY,
    versions=(ExpensesV1,),
    description="Finance -> Dataverse: posted project expense lines become expense records.",
)
