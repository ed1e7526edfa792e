"""Actuals: what a project really cost (and, when billable, what it will bill), one row per transaction."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from contracts.fields import TransactionClassification, TransactionType


class PostingStatus(StrEnum):
    """Whether finance has posted the actual through the integration journal."""

    UNPOSTED = "unposted"
    POSTED = "posted"


class Actual(NamedTuple):
    """One actual, its fields named as the ``actuals`` table's columns.

    A named tuple rather than a frozen dataclass: every approved expense record makes one or two,
    and a named tuple is made in a quarter of the time, as immutable and read the same way.
    """

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
