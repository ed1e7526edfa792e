"""Payload bases: every contract payload is a batch of rows, like a dual-write transaction."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Dual-write applies at most 1,000 rows in one transaction; so does one of our messages.
MAX_ROWS = 1000

RowT = TypeVar("RowT")

Rows = Annotated[list[RowT], Field(min_length=1, max_length=MAX_ROWS)]


class Row(BaseModel):
    """One record of a table map or command. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Batch(BaseModel):
    """A payload: ``rows`` of one contract version, with unique integration keys.

    ``key_fields`` names the row fields that form the integration key; two rows with the same key
    in one batch are refused, since the second would silently overwrite the first. Keys are kept
    as sent and compared case-sensitively, so two keys that differ only in case are refused too:
    they would make two records that people (and case-insensitive systems) take for one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_fields: ClassVar[tuple[str, ...]] = ()
    rows: Any

    @model_validator(mode="after")
    def _keys_are_unique(self) -> "Batch":
        if not self.key_fields:
            return self
        key_of = attrgetter(*self.key_fields)
        keys = [key_of(row) for row in self.rows]
        if len({_folded(key) for key in keys}) == len(keys):
            return self  # the common case, in one pass: no key repeats, in any case
        seen: dict[tuple[Any, ...], tuple[int, tuple[Any, ...]]] = {}
        for index, row in enumerate(self.rows):
            key = tuple(getattr(row, name) for name in self.key_fields)
            folded = tuple(value.lower() if isinstance(value, str) else value for value in key)
            if folded in seen:
                first, first_key = seen[folded]
                if first_key == key:
                    raise ValueError(f"rows.{index} repeats the integration key ({self._shown(key)})")
                raise ValueError(
                    f"rows.{index} repeats the integration key of rows.{first} in another case "
                    f"({self._shown(key)}; {self._shown(first_key)}): keys are kept as sent, and two that "
                    "differ only in case are refused"
                )
            seen[folded] = (index, key)
        return self

    def _shown(self, key: tuple[Any, ...]) -> str:
        return ", ".join(f"{name}={value}" for name, value in zip(self.key_fields, key))


def _folded(key: Any) -> Any:
    """A key (one value, or a tuple of values) with its text in lower case."""
    if isinstance(key, str):
        return key.lower()
    if isinstance(key, tuple):
        return tuple(value.lower() if isinstance(value, str) else value for value in key)
    return key
