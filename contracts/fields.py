"""Field types shared by several contracts."""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, WithJsonSchema

#: A natural key (category, project id): letters, digits and ``-_.``, kept in upper case.
Code = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$", to_upper=True)
]

#: A document or record identifier built from codes (voucher, expense id, actual id, job id).
Reference = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,59}$", to_upper=True)
]

#: A display name.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]

#: A free text.
Description = Annotated[str, StringConstraints(max_length=500)]

#: A person's user name (project manager, worker).
Person = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$", to_lower=True)]


class TransactionClass(StrEnum):
    """The four transaction classes of a shared category."""

    HOUR = "hour"
    FEE = "fee"
    ITEM = "item"
    EXPENSE = "expense"


class ExpenseType(StrEnum):
    """What an expense category is used for (Expense management > Shared categories)."""

    AIRLINE = "airline"
    CAR_RENTAL = "car_rental"
    ENTERTAINMENT = "entertainment"
    HOTEL = "hotel"
    MEALS = "meals"
    MILEAGE = "mileage"
    TRANSPORT = "transport"
    OTHER = "other"

#: A line number within a document, from 1.
LineNumber = Annotated[int, Field(ge=1, le=1_000_000)]


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class TransactionClassification(IntEnum):
    """Dataverse option values of msdyn_transactionclassification."""

    TIME = 192350000
    EXPENSE = 192350001
    MATERIAL = 192350002
    MILESTONE = 192350003
    FEE = 192350004


class TransactionType(IntEnum):
    """Dataverse option values of msdyn_transactiontypecode used by actuals."""

    COST = 192350000
    UNBILLED_SALES = 192350005
    BILLED_SALES = 192350006


#: An exchange rate: units of the accounting currency for one unit of the transaction currency.
ExchangeRate = Annotated[
    Decimal,
    Field(gt=0, max_digits=18, decimal_places=8, allow_inf_nan=False),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,8})?$", "description": "Exchange rate as a string"}),
]
