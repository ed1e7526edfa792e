"""Ids differing only in case: a side never creates a record beside one it holds in another case.

Ids are kept exactly as sent and compared case-sensitively (``prj-us-100`` is not ``PRJ-US-100``).
Two records whose ids differ only in case would still be taken for one by people, and by the
case-insensitive systems around the integration, so a handler that would create one refuses it
for good instead, naming both ids. The lookup is one statement per batch, whatever its size:
``lower(column) IN (the batch's ids, lowered)``; the ids are ASCII (their contract patterns), so
SQL's ``lower`` and Python's agree.

The check reads what is committed, so two transactions could each pass it and create the two
variants side by side. A unique index on ``lower(column)`` (:func:`unique_in_any_case`, with the
columns of the id's scope: the company for ids unique per company) closes that gap, and serves the
lookup (the lowered id leads it). The transaction that comes second is refused by the index;
:class:`CaseVariants` turns that refusal into the check's own (permanent, naming both ids).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Index, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from shared.errors import BusinessRuleViolation
from shared.logging import get_logger
from shared.sql_lists import ValueList, one_of

log = get_logger(__name__)

#: Names of the unique indexes on lower(id): ``uq_<table>_lower_<id column>``.
_INDEX_PREFIX, _INDEX_INFIX = "uq_", "_lower_"


def any_case_index_name(table: str, column: str) -> str:
    """The name of the unique index on lower(``column``) of ``table`` (the migrations make it by this name too)."""
    return f"{_INDEX_PREFIX}{table}{_INDEX_INFIX}{column}"


def unique_in_any_case(column: Column[Any], *scope: Column[Any]) -> Index:
    """The unique index on ``lower(column)``, then ``scope`` (added to ``column``'s table)."""
    return Index(any_case_index_name(column.table.name, column.name), func.lower(column), *scope, unique=True)


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


@dataclass(frozen=True)
class CaseVariants:
    """The ids of one kind a batch writes, refused when one differs only in case from an id held.

    ``held`` finds those of ``ids`` held in another case (a repository's ``*_in_another_case``).
    :meth:`refuse_held` is the check before the batch writes; :meth:`guard` covers the write.
    """

    what: str
    kind: str
    ids: Sequence[str | None]
    held: Callable[[Connection], dict[str, str]]
    scope: str = ""

    def refuse_held(self, connection: Connection) -> None:
        """Refuse the batch for good when one of its ids is held in another case (one statement)."""
        refuse_case_variants(self.what, self.kind, self.ids, self.held(connection), self.scope)

    @contextmanager
    def guard(self, connection: Connection) -> Iterator[None]:
        """Around the write: a case variant another transaction committed since :meth:`refuse_held`
        is refused by the unique index on lower(id), and the batch then as :meth:`refuse_held` refuses it.

        An index refusal without such a variant is the same id, written at the same moment by another
        transaction (PostgreSQL's ``ON CONFLICT`` settles conflicts on the key it names only): it is
        raised as it is, a transient error, and the retry finds the row and updates it.
        """
        try:
            yield
        except IntegrityError as error:
            index = violated_index(error)
            if index is None or not is_any_case_index(index):
                raise
            variants = self._held_after_refusal(connection)
            if not variants:
                log.info("the same id written by another transaction at the same time; retried", index=index)
                raise
            log.warning("case variant committed by another transaction meanwhile refused", index=index,
                        ids={sent: variants[sent] for sent in self.ids if sent in variants})
            refuse_case_variants(self.what, self.kind, self.ids, variants, self.scope)
            raise

    def _held_after_refusal(self, connection: Connection) -> dict[str, str]:
        """What the index met. SQLite goes on with the transaction after a refused statement; PostgreSQL's
        is aborted, so it is read afresh: the other transaction committed (the index waited for it)."""
        if connection.dialect.name == "sqlite":
            return self.held(connection)
        with connection.engine.connect() as fresh:
            return self.held(fresh)


def is_any_case_index(name: str) -> bool:
    """Whether ``name`` is one of the unique indexes on lower(id) (:func:`unique_in_any_case`)."""
    return name.startswith(_INDEX_PREFIX) and _INDEX_INFIX in name


def violated_index(error: IntegrityError) -> str | None:
    """The unique index or constraint ``error`` names: psycopg's diagnostics, or SQLite's message."""
    diagnostics = getattr(error.orig, "diag", None)
    if diagnostics is not None:
        return diagnostics.constraint_name
    text = str(error.orig)
    marker = "UNIQUE constraint failed: index '"
    if text.startswith(marker):
        return text[len(marker):].split("'", 1)[0]
    return None
