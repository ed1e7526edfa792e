"""Hypothesis strategies for contract payloads, derived from the pydantic models themselves.

Deriving them from the models (rather than writing one by hand per contract) means a new contract
version is covered by the property tests the day it is registered. A field type this module does
not know raises ``TypeError`` so the gap is seen, not silently skipped.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import types
import typing
from decimal import Decimal
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MinLen
from hypothesis import strategies as st
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints

from contracts import money, wire

#: Any JSON document: what a confused or hostile publisher might send.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _metadata_of(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Unwrap ``Annotated[...]`` into the bare type and its constraints."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _metadata_of(base, [*metadata, *extra])
    return annotation, metadata


def _first(metadata: list[Any], kind: type) -> Any:
    return next((item for item in metadata if isinstance(item, kind)), None)


def _decimal(metadata: list[Any]) -> st.SearchStrategy[Decimal]:
    general = next(item for item in metadata if hasattr(item, "decimal_places"))
    places, digits = general.decimal_places, general.max_digits
    step = Decimal(1).scaleb(-places)
    low = Decimal(0) if _first(metadata, Ge) is None else Decimal(_first(metadata, Ge).ge)
    if _first(metadata, Gt) is not None:
        low = Decimal(_first(metadata, Gt).gt) + step
    high = Decimal(10) ** (digits - places) - step
    return st.decimals(min_value=low, max_value=high, places=places, allow_nan=False, allow_infinity=False)


#: Characters a text field may hold: no C0 control characters (free text may hold tab and line breaks).
_PLAIN_CHARACTERS = st.characters(codec="utf-8", exclude_characters="".join(chr(code) for code in range(0x20)))
_FREE_CHARACTERS = st.characters(
    codec="utf-8", exclude_characters="".join(chr(code) for code in range(0x20) if chr(code) not in "\t\n\r")
)


def _string(metadata: list[Any]) -> st.SearchStrategy[str]:
    checks = [item.func for item in metadata if isinstance(item, AfterValidator)]
    if money._iso_currency in checks:
        return st.sampled_from(sorted(money.ISO_CURRENCIES))
    constraints = _first(metadata, StringConstraints)
    if constraints is not None and constraints.pattern:
        return st.from_regex(constraints.pattern, fullmatch=True)
    low = constraints.min_length if constraints and constraints.min_length else 0
    high = constraints.max_length if constraints and constraints.max_length else 50
    characters = st.characters(codec="utf-8")
    if wire.plain_text in metadata:
        characters = _PLAIN_CHARACTERS
    elif wire.free_text in metadata:
        characters = _FREE_CHARACTERS
    text = st.text(characters, min_size=low, max_size=high)
    if constraints is not None and constraints.strip_whitespace and low:
        text = text.filter(lambda value: len(value.strip()) >= low)
    return text


def _integer(metadata: list[Any]) -> st.SearchStrategy[int]:
    low = _first(metadata, Ge).ge if _first(metadata, Ge) else (_first(metadata, Gt).gt + 1 if _first(metadata, Gt) else -(2**31))
    high = _first(metadata, Le).le if _first(metadata, Le) else (_first(metadata, Lt).lt - 1 if _first(metadata, Lt) else 2**31)
    return st.integers(low, high)


def value_strategy(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    """Valid wire (JSON) data for one field of a contract model."""
    annotation, metadata = _metadata_of(annotation, list(metadata or []))
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([value_strategy(arg) for arg in typing.get_args(annotation)])
    if annotation is type(None):
        return st.none()
    if origin is list:
        [item] = typing.get_args(annotation)
        low = _first(metadata, MinLen).min_length if _first(metadata, MinLen) else 0
        return st.lists(value_strategy(item), min_size=low, max_size=max(low, 3))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return row_strategy(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from([member.value for member in annotation])
    if origin is typing.Literal:
        return st.sampled_from(list(typing.get_args(annotation)))
    if annotation is AwareDatetime:
        moments = st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2100, 12, 31), timezones=st.just(dt.UTC))
        return moments.map(dt.datetime.isoformat)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return _integer(metadata)
    if annotation is Decimal:
        return _decimal(metadata).map(lambda value: format(value, "f"))  # the documented form, never "1E-8"
    if annotation is dt.date:
        return st.dates(dt.date(1990, 1, 1), dt.date(2100, 12, 31)).map(dt.date.isoformat)
    if annotation is str:
        return _string(metadata)
    raise TypeError(f"no strategy for {annotation!r} {metadata!r}: teach tests/unit/contracts/strategies.py")


def row_strategy(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid wire data for a model: every required field, and each optional one or not."""
    required, optional = {}, {}
    for name, info in model.model_fields.items():
        strategy = value_strategy(info.annotation, info.metadata)
        (required if info.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def payload_strategy(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid payload of one contract version, as a publisher would write it in JSON."""
    return row_strategy(model).map(lambda payload: json.loads(json.dumps(payload)))
