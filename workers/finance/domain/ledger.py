"""The general ledger's vocabulary: vouchers made of signed lines in accounting currency."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class LedgerLine:
    """One line of a voucher. Debits are positive, credits negative, in accounting currency."""

    legal_entity: str
    voucher: str
    line_number: int
    account: str
    amount: Decimal
    currency: str
    date: dt.date
    transaction_amount: Decimal
    transaction_currency: str
    project_id: str | None = None
    expense_category: str | None = None
    source: str = ""
    source_id: str = ""


def is_balanced(lines: list[LedgerLine]) -> bool:
    return sum((line.amount for line in lines), ZERO) == ZERO


def unbalanced_vouchers(lines: list[LedgerLine]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line.voucher] = totals.get(line.voucher, ZERO) + line.amount
    return {voucher: total for voucher, total in totals.items() if total != ZERO}
