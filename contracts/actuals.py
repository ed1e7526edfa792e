"""``msdyn_actuals`` (Dataverse -> finance) and the posting results that come back."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from contracts.batch import Batch, Row, Rows
from contracts.fields import Code, ExchangeRate, Reference, TransactionClassificationOption, TransactionTypeOption
from contracts.money import Amount, CurrencyCode
from contracts.registry import Contract, Kind, Scope
from contracts.wire import Date, Flag


class ActualV1(Row):
    actual_id: Reference
    expense_id: Reference
    project_id: Code
    expense_category: Code
    transaction_classification: TransactionClassificationOption
    transaction_type: TransactionTypeOption
    date: Date
    amount: Amount = Field(description="In the transaction currency")
    currency: CurrencyCode
    accounting_amount: Amount = Field(description="In the accounting currency, as posted with the expense")
    accounting_currency: CurrencyCode
    exchange_rate: ExchangeRate
    skip_sync: Flag = Field(default=False, description="True: the map does not carry this actual to finance")


class ActualsV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("actual_id",)
    rows: Rows[ActualV1]


class ActualPostingV1(Row):
    actual_id: Reference
    voucher: Reference
    posted_on: Date
    accounting_amount: Amount
    accounting_currency: CurrencyCode
    exchange_rate: ExchangeRate


class ActualPostingsV1(Batch):
    """Integration journal posting results, written back onto the Dataverse actuals."""

    key_fields: ClassVar[tuple[str, ...]] = ("actual_id",)
    rows: Rows[ActualPostingV1]


class SystemJobRefV1(Row):
    job_id: Reference


class RunSystemJobsV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("job_id",)
    rows: Rows[SystemJobRefV1]


MSDYN_ACTUALS = Contract(
    name="msdyn_actuals",
    kind=Kind.TABLE_MAP,
    scope=Scope.LEGAL_ENTITY,
    versions=(ActualsV1,),
    description="Dataverse -> finance: expense actuals land in the finance staging table.",
)

MSDYN_ACTUALPOSTINGS = Contract(
    name="msdyn_actualpostings",
    kind=Kind.TABLE_MAP,
    scope=Scope.LEGAL_ENTITY,
    versions=(ActualPostingsV1,),
    description="Finance -> Dataverse: voucher, accounting amount and rate of each posted actual.",
)

RUN_SYSTEM_JOBS = Contract(
    name="run_system_jobs",
    kind=Kind.COMMAND,
    scope=Scope.LEGAL_ENTITY,
    versions=(RunSystemJobsV1,),
    description="Dataverse -> itself: run waiting automated-approval system jobs.",
)
