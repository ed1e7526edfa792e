"""Expense records: the posted project expense lines finance writes to Dataverse (msdyn_expenses)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class ApprovalStatus(StrEnum):
    """Where an expense record's automated approval stands."""

    PENDING = "pending"
    APPROVED = "approved"


@dataclass(frozen=True)
class ExpenseRecord:
    """One expense record of one company, as finance posted it.

    ``project_cost`` is the cost to the project in the line's currency (net of recoverable tax),
    ``project_cost_accounting`` the same in the company's accounting currency, as posted.
    """

    legal_entity: str
    expense_id: str
    report_id: str
    line_number: int
    project_id: str
    expense_category: str
    worker: str
    date: dt.date
    amount: Decimal
    currency: str
    project_cost: Decimal
    accounting_currency: str
    project_cost_accounting: Decimal
    exchange_rate: Decimal
    voucher: str
    approval_status: ApprovalStatus = ApprovalStatus.PENDING
