"""Field types shared by several contracts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

#: A natural key (category, project id): letters, digits and ``-_.``, kept in upper case.
Code = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$", to_upper=True)
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
