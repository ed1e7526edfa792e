"""Actuals: what a project really cost (and, when billable, what it will bill), one row per transaction."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from contracts.fields import TransactionClassification, TransactionType


class PostingStatus(StrEnum):
    """Whether finance has posted the actual through the integration journal."""

    UNPOSTED = "unposted"
    POSTED = "posted"


@dataclass(frozen=True)
class Actual:
    actual_id: str
    legal_entity: str
    expense_id: str
    project_id: str
    expense_category: str
    transaction_classification: TransactionClassification
    transaction_type: TransactionType
    date: dt.date
    amount: Decimal
    currency: str
    accounting_amount: Decimal
    accounting_currency: str
    exchange_rate: Decimal
    skip_sync: bool = False
    voucher: str | None = None
    posted_on: dt.date | None = None
    posting_status: PostingStatus = PostingStatus.UNPOSTED
