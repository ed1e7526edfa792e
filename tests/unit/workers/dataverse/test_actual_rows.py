"""The actuals Dataverse emits are written field by field, without a pydantic round trip: they must
be exactly what ``ActualV1`` would write, key order included (the outbox combines parts as text)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.actuals import ActualsV1
from contracts.fields import TransactionClassification, TransactionType
from workers.dataverse.domain.actuals import Actual
from workers.dataverse.expense_handlers import _actual_message_row


def actual(**changes: object) -> Actual:
    values = dict(
        actual_id="ACT-1", legal_entity="USPM", expense_id="R-1-1", project_id="PRJ-1", expense_category="HOTEL",
        transaction_classification=TransactionClassification.EXPENSE, transaction_type=TransactionType.COST,
        date=dt.date(2026, 12, 3), amount=Decimal("120.50"), currency="EUR", accounting_amount=Decimal("131.34"),
        accounting_currency="USD", exchange_rate=Decimal("1.08995"), skip_sync=False,
    )
    values.update(changes)
    return Actual(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"transaction_type": TransactionType.UNBILLED_SALES, "skip_sync": True},
        {"amount": Decimal("0.00"), "accounting_amount": Decimal("-0.00")},
        {"exchange_rate": Decimal("1E-8")},
        {"amount": Decimal("99999999.99"), "date": dt.date(2026, 1, 31)},
    ],
    ids=["cost", "unbilled sales", "zero", "tiny rate", "largest amount"],
)
def test_an_emitted_actual_is_what_the_contract_writes(changes: dict[str, object]) -> None:
    row = _actual_message_row(actual(**changes))

    validated = ActualsV1.model_validate({"rows": [row]}).model_dump(mode="json")["rows"][0]
    assert list(row.items()) == list(validated.items())
