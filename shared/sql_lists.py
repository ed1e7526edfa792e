"""``column IN (list)`` with the list as one parameter, so the statement is built and compiled once.

SQLAlchemy's ``in_()`` expands a list into one placeholder per value at every execution and,
with the ``$1`` placeholders our PostgreSQL engines use, renumbers the whole statement each time:
for the small key lists a handler looks up (a report's ids, a batch's projects) that cost more
CPU than the query. ``one_of(column, bindparam(name, type_=ValueList()))`` renders instead

- on PostgreSQL: ``column = ANY($1)``, the list sent as one array;
- elsewhere (SQLite): ``column IN (SELECT value FROM json_each(?))``, the list sent as JSON.

    LINES = select(lines).where(one_of(lines.c.report_id, bindparam("b_ids", type_=ValueList())))
    connection.execute(LINES, {"b_ids": ["R1", "R2"]})
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Boolean, Dialect, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine


class ValueList(TypeDecorator[list[Any]]):
    """A list of plain values as one parameter: an array of ``item`` (strings by default), or JSON on SQLite."""

    impl = String
    cache_ok = True

    def __init__(self, item: TypeEngine[Any] | None = None) -> None:
        super().__init__()
        self.item = item if item is not None else String()

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(self.item))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Iterable[Any] | None, dialect: Dialect) -> Any:
        values = list(value or ())
        return values if dialect.name == "postgresql" else json.dumps(values)


class one_of(FunctionElement[bool]):  # noqa: N801 (named like SQL functions)
    """``column`` is one of the values of a :class:`ValueList` parameter."""

    type = Boolean()
    name = "one_of"
    inherit_cache = True
    #: A condition as it stands: never ``(... IN (...)) = 1`` on SQLite (which has no boolean type), a
    #: comparison that keeps SQLite from using an index on ``column`` (e.g. on ``lower(id)``).
    _is_implicitly_boolean = True


@compiles(one_of, "postgresql")
def _one_of_postgresql(element: one_of, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = list(element.clauses)
    return f"{compiler.process(column, **kw)} = ANY({compiler.process(values, **kw)})"


@compiles(one_of)
def _one_of_default(element: one_of, compiler: SQLCompiler, **kw: Any) -> str:
    column, values = list(element.clauses)
    return f"{compiler.process(column, **kw)} IN (SELECT value FROM json_each({compiler.process(values, **kw)}))"
