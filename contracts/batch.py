"""Payload bases: every contract payload is a batch of rows, like a dual-write transaction."""

from __future__ import annotations

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
    in one batch are refused, since the second would silently overwrite the first.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_fields: ClassVar[tuple[str, ...]] = ()
    rows: Any

    @model_validator(mode="after")
    def _keys_are_unique(self) -> "Batch":
        if not self.key_fields:
            return self
        seen: set[tuple[Any, ...]] = set()
        for index, row in enumerate(self.rows):
            key = tuple(getattr(row, name) for name in self.key_fields)
            if key in seen:
                shown = ", ".join(f"{n}={v}" for n, v in zip(self.key_fields, key))
                raise ValueError(f"rows.{index} repeats the integration key ({shown})")
            seen.add(key)
        return self
