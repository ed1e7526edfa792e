"""The JSON the wire format documents, and nothing coerced into it.

Pydantic's lax mode turns ``"1"`` into 1, ``"yes"`` into True, ``1e3`` into an amount and
``1767225600`` into a date. A publisher that sends such a value has a bug that would otherwise
surface far from its cause, so a contract takes each value only in its documented JSON type:

- whole numbers and true/false as JSON numbers and booleans, never as strings (``Strict``);
- amounts, quantities and rates as JSON strings of plain decimal digits (``decimal_text``);
- dates as ``"YYYY-MM-DD"`` strings and times as ISO 8601 strings (JSON has no such types);
- text without C0 control characters (``plain_text``); free text may hold tab and line breaks.

Python code building a contract passes ``Decimal``, ``date`` and ``datetime`` objects, which are
exact already; only what arrives as JSON is held to its text form.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, GetCoreSchemaHandler, PlainSerializer, Strict
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

#: A whole number: a JSON integer, never ``"1"``, ``1.0`` or ``true``.
WholeNumber = Annotated[int, Strict()]
#: A flag: JSON ``true`` or ``false``, never ``"yes"``, ``1`` or ``"true"``.
Flag = Annotated[bool, Strict()]


def json_kind(value: Any) -> str:
    """What a value is in JSON terms, for a reason a publisher can act on."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- text ---------------------------------------------------------------------------------------

#: C0 control characters (U+0000 to U+001F); PostgreSQL refuses U+0000 in text outright.
_CONTROL = {chr(code) for code in range(0x20)}
#: What free text (a description) may hold of them: tab, line feed, carriage return.
_LINE_BREAKS = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class JsonSchemaPattern:
    """Adds a ``pattern`` to a field's JSON Schema, for a rule a validator checks with a clearer reason."""

    pattern: str

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def _refuse_characters(refused: set[str]) -> Callable[[str], str]:
    found = re.compile("[" + "".join(re.escape(character) for character in sorted(refused)) + "]")

    def check(text: str) -> str:
        match = found.search(text)  # one pass in C: this runs on every name of every row
        if match is not None:
            raise PydanticCustomError(
                "control_character",
                "must not contain control character {character} (at position {position})",
                {"character": f"U+{ord(match.group()):04X}", "position": match.start()},
            )
        return text

    return check


#: Text on one line: no control characters at all.
plain_text = AfterValidator(_refuse_characters(_CONTROL))
PLAIN_TEXT_SCHEMA = JsonSchemaPattern(r"^[^\u0000-\u001f]*$")
#: Free text: no control characters but tab, line feed and carriage return.
free_text = AfterValidator(_refuse_characters(_CONTROL - _LINE_BREAKS))
FREE_TEXT_SCHEMA = JsonSchemaPattern(r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f]*$")

#: A string of text on one line, for envelope fields without a pattern of their own.
Text = Annotated[str, plain_text, PLAIN_TEXT_SCHEMA]


# -- decimals -----------------------------------------------------------------------------------

_DECIMAL_FORM = re.compile(r"-?[0-9]+(\.[0-9]+)?")

#: Entries of a decimal core schema that are not constraints on its value.
_NOT_CONSTRAINTS = {"type", "metadata", "ref", "serialization"}


@dataclass(frozen=True)
class DecimalText:
    """A non-negative decimal as a JSON string of at most ``digits`` digits before the point and
    ``places`` after it: ``^[0-9]{1,digits}(\\.[0-9]{1,places})?$``, the form the JSON Schema documents.

    Placed after the field's constraints (``Field(ge=0, max_digits=..., decimal_places=...)``).
    Each refusal says what is wrong (a number, an exponent, a sign, too many decimals), so the
    reason an operator reads names the fix; ``zero_allowed`` picks the wording of a negative's.

    A string of the documented form is within those constraints by its form alone (which is
    checked once, when the field's schema is built), so it becomes its Decimal directly: pydantic's
    check of the constraints costs three times what making the Decimal does, on every amount of
    every row. Zero where the field must be more than zero, and Decimals built in Python, still
    go through them.
    """

    digits: int
    places: int
    example: str
    zero_allowed: bool

    def __get_pydantic_core_schema__(self, source_type: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        constrained = handler(source_type)
        self._check_documented_form_is_within(constrained)
        documented = re.compile(rf"[0-9]{{1,{self.digits}}}(\.[0-9]{{1,{self.places}}})?")
        positive = "gt" in constrained  # gt=0 (checked above): only zero fails it

        def check(value: Any, constraints: ValidatorFunctionWrapHandler) -> Any:
            if isinstance(value, str) and documented.fullmatch(value):
                number = Decimal(value)
                if not positive or number:
                    return number
                return constraints(value)  # zero where it must be more: refused with pydantic's reason
            if isinstance(value, Decimal):
                return constraints(value)  # built in Python: exact already, held to the constraints
            raise self._refusal(value)

        return core_schema.no_info_wrap_validator_function(check, constrained)

    def _check_documented_form_is_within(self, schema: CoreSchema) -> None:
        """Refuse, when the contract is defined, constraints that a string of the documented form
        could fail (but zero a ``gt=0`` refuses): the shortcut above would let it through."""
        within = {
            "allow_inf_nan": lambda allowed: True,  # a string of digits is finite
            "ge": lambda bound: bound <= 0,
            "gt": lambda bound: bound == 0,
            "max_digits": lambda most: most >= self.digits + self.places,
            "decimal_places": lambda most: most >= self.places,
        }
        if schema["type"] != "decimal":
            raise TypeError(f"{self} validates a Decimal, not {schema['type']}")
        unmet = [
            f"{name}={value!r}"
            for name, value in schema.items()
            if name not in _NOT_CONSTRAINTS and not (name in within and within[name](value))
        ]
        if unmet:
            raise TypeError(f"{self}: constraint(s) {', '.join(unmet)} could refuse a string of the documented form")

    def _refusal(self, value: Any) -> PydanticCustomError:
        """Why a value that is not a string of the documented form is refused."""
        if not isinstance(value, str):
            return PydanticCustomError(
                "decimal_string", "must be a JSON string such as {example}, not {kind}",
                {"example": f'"{self.example}"', "kind": json_kind(value)},
            )
        if _DECIMAL_FORM.fullmatch(value):
            if value.startswith("-"):
                return PydanticCustomError(
                    "greater_than_equal" if self.zero_allowed else "greater_than",
                    "Input should be greater than or equal to 0" if self.zero_allowed else "Input should be greater than 0",
                )
            if len(value.partition(".")[2]) > self.places:
                return PydanticCustomError(
                    "decimal_max_places", "Decimal input should have no more than {places} decimal places",
                    {"places": self.places},
                )
            return PydanticCustomError(
                "decimal_whole_digits", "Decimal input should have no more than {digits} digits before the point",
                {"digits": self.digits},
            )
        return PydanticCustomError(
            "decimal_string",
            "must be plain decimal digits with an optional point, such as {example}: no exponent, sign, "
            "spaces or other characters",
            {"example": f'"{self.example}"'},
        )


def decimal_text(*, digits: int, places: int, example: str, zero_allowed: bool) -> DecimalText:
    """A decimal field held to its documented text form (see :class:`DecimalText`)."""
    return DecimalText(digits=digits, places=places, example=example, zero_allowed=zero_allowed)


def _fixed_point(value: Decimal) -> str:
    """A Decimal as the wire writes it: ``"0.00000001"``, never ``"1E-8"``; zero without a sign.

    ``str`` writes the same digits as ``format(value, "f")``, at a seventh of the cost, unless it
    needs an exponent (a positive one, or more than six zeros after the point): only the rare
    amount or rate that does is written again.
    """
    if value.is_zero():
        value = value.copy_abs()
    text = str(value)
    return format(value, "f") if "E" in text else text


#: Writes a Decimal in the documented form, whatever its exponent.
fixed_point = PlainSerializer(_fixed_point, return_type=str, when_used="json")


# -- dates, times, ids, option values -------------------------------------------------------------

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}.*", re.S)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _date_text(value: Any) -> Any:
    # The string first: this runs on every date of every row, and dates built in Python are rare.
    if isinstance(value, str):
        if _DATE.fullmatch(value):
            return value
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise PydanticCustomError(
        "date_string", "must be a date as a JSON string \"YYYY-MM-DD\" such as \"2026-11-25\", not {shown}",
        {"shown": repr(value) if isinstance(value, str) else json_kind(value)},
    )


def _timestamp_text(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return value
    raise PydanticCustomError(
        "datetime_string",
        "must be a time as an ISO 8601 JSON string with its time zone, such as \"2026-11-25T09:30:00Z\", not {shown}",
        {"shown": repr(value) if isinstance(value, str) else json_kind(value)},
    )


def _uuid_text(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value
    raise PydanticCustomError(
        "uuid_string", "must be a UUID as a JSON string such as \"8f0c2f3a-5b7e-4c1d-9a2b-6e4f3d2c1b0a\", not {shown}",
        {"shown": repr(value) if isinstance(value, str) else json_kind(value)},
    )


#: A calendar date: ``"2026-11-25"`` on the wire.
Date = Annotated[dt.date, BeforeValidator(_date_text)]
#: A moment with its time zone: ``"2026-11-25T09:30:00Z"`` on the wire.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]
#: A UUID in its usual text form, with dashes.
Uuid = Annotated[uuid.UUID, BeforeValidator(_uuid_text)]


def option_value(option_set: type[IntEnum]) -> Any:
    """An option set's value as a JSON integer (``192350001``), never as a string or a number with decimals."""

    def check(value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise PydanticCustomError(
            "option_value", "must be one of the option values as a JSON integer, not {kind}", {"kind": json_kind(value)}
        )

    return Annotated[option_set, BeforeValidator(check)]
