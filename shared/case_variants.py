"""Ids differing only in case: a side never creates a record beside one it holds in another case.

Ids are kept exactly as sent and compared case-sensitively (``prj-us-100`` is not ``PRJ-US-100``).
Two records whose ids differ only in case would still be taken for one by people, and by the
case-insensitive systems around the integration, so a handler that would create one refuses it
for good instead, naming both ids. The lookup is one statement per batch, whatever its size:
``lower(column) IN (the batch's ids, lowered)``; the ids are ASCII (their contract patterns), so
SQL's ``lower`` and Python's agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from shared.errors import BusinessRuleViolation
from shared.sql_lists import ValueList, one_of


def held_in_another_case(connection: Connection, column: Any, ids: Iterable[str | None], *where: Any) -> dict[str, str]:
    """Each of ``ids`` that is not held as it is but is held in another case, with the id as held.

    ``where`` narrows the rows looked at to those of the same kind (one company's, for ids that
    are unique per company).
    """
    wanted = sorted({value for value in ids if value is not None})
    if not wanted:
        return {}
    query = select(column).distinct().where(
        one_of(func.lower(column), bindparam("b_lowered_ids", type_=ValueList())), *where
    )
    held: dict[str, set[str]] = {}
    for value in connection.scalars(query, {"b_lowered_ids": sorted({value.lower() for value in wanted})}):
        held.setdefault(value.lower(), set()).add(value)
    return {
        value: min(held[value.lower()])
        for value in wanted
        if value.lower() in held and value not in held[value.lower()]
    }


def case_variant_problems(kind: str, sent: Iterable[str | None], variants: dict[str, str], scope: str = "") -> list[str]:
    """One problem per id that differs only in case from a held one, each naming both ids."""
    return [
        f"{kind} {value!r} differs only in case from the existing {kind} {variants[value]!r}{scope}: ids are "
        "kept as sent and case-sensitive, and a record is never created beside one differing only in case"
        for value in dict.fromkeys(sent)
        if value is not None and value in variants
    ]


def refuse_case_variants(what: str, kind: str, sent: Iterable[str | None], variants: dict[str, str], scope: str = "") -> None:
    """Raise one BusinessRuleViolation naming every id of the batch that differs only in case from a held one."""
    problems = case_variant_problems(kind, sent, variants, scope)
    if problems:
        raise BusinessRuleViolation(f"{what} refused, nothing written: " + "; ".join(problems))
