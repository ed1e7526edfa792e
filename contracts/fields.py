"""Field types shared by several contracts."""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from contracts.wire import (
    FREE_TEXT_SCHEMA,
    PLAIN_TEXT_SCHEMA,
    WholeNumber,
    decimal_text,
    fixed_point,
    free_text,
    option_value,
    plain_text,
)

#: A natural key (category, project id): letters, digits and ``-_.``, kept exactly as sent. Keys are
#: case-sensitive; a side refuses to create one that differs only in case from one it holds.
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$")]

#: A document or record identifier built from codes (voucher, expense id, actual id, job id), kept as sent.
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,59}$")]

#: A display name, on one line.
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True), plain_text, PLAIN_TEXT_SCHEMA]

#: A free text: line breaks and tabs allowed, other control characters not.
Description = Annotated[str, StringConstraints(max_length=500), free_text, FREE_TEXT_SCHEMA]


def _lower_case_user_name(value: object) -> object:
    """A user name in another case is refused with the name to send, never folded silently."""
    if isinstance(value, str) and value != value.lower() and value.isascii():
        raise PydanticCustomError(
            "user_name_case", "user names are lower case: send {lower}, not {sent}",
            {"lower": repr(value.lower()), "sent": repr(value)},
        )
    return value


#: A person's user name (project manager, worker), in lower case as the finance set-up holds it.
Person = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.@-]{0,63}$"), BeforeValidator(_lower_case_user_name)
]


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
LineNumber = Annotated[WholeNumber, Field(ge=1, le=1_000_000)]


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


#: The option values as they travel: JSON integers, never strings such as "192350001".
TransactionClassificationOption = option_value(TransactionClassification)
TransactionTypeOption = option_value(TransactionType)


#: An exchange rate: units of the accounting currency for one unit of the transaction currency.
ExchangeRate = Annotated[
    Decimal,
    Field(gt=0, max_digits=18, decimal_places=8, allow_inf_nan=False),
    decimal_text(digits=10, places=8, example="1.0850", zero_allowed=False),
    fixed_point,
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,8})?$", "description": "Exchange rate as a string"}),
]
