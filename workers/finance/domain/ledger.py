"""The general ledger's vocabulary: vouchers made of signed lines in accounting currency.

Records made once per row of a batch (ledger lines here; posted lines, journal lines, project
transactions... beside them) are NamedTuples: immutable as frozen dataclasses are, but built at
a third of the cost (a frozen dataclass sets each field through ``object.__setattr__``), and a
posted expense line makes about a dozen of them on its way to the integration journal.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import NamedTuple

ZERO = Decimal("0.00")


class LedgerLine(NamedTuple):
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
