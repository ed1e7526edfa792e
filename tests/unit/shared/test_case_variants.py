"""Ids differing only in case from held ones: every one of a batch is named, with the id as held, whether
the check finds it or the unique index on lower(id) refuses it."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError

from shared.case_variants import CaseVariants, case_variant_problems, refuse_case_variants
from shared.errors import BusinessRuleViolation


def test_each_id_held_in_another_case_is_named_once_with_both_ids():
    problems = case_variant_problems(
        "project", ["prj-us-100", "PRJ-NEW", "prj-us-100", None, "Prj-Us-200"],
        {"prj-us-100": "PRJ-US-100", "Prj-Us-200": "PRJ-US-200"}, " of company USPM",
    )

    assert [problem.split(":")[0] for problem in problems] == [
        "project 'prj-us-100' differs only in case from the existing project 'PRJ-US-100' of company USPM",
        "project 'Prj-Us-200' differs only in case from the existing project 'PRJ-US-200' of company USPM",
    ]


def test_a_batch_with_such_an_id_is_refused_for_good_naming_the_contract():
    with pytest.raises(BusinessRuleViolation, match=r"^create_projects refused, nothing written: project 'prj-1' differs"):
        refuse_case_variants("create_projects", "project", ["prj-1", "PRJ-2"], {"prj-1": "PRJ-1"})


def test_a_batch_without_one_passes():
    refuse_case_variants("create_projects", "project", ["PRJ-1", "PRJ-2"], {})


# -- the guard around a write: the unique index on lower(id) ------------------------------------

class _Dialect:
    name = "sqlite"  # the guard reads on the connection it was given


class _Connection:
    dialect = _Dialect()


class _Diagnostics:
    def __init__(self, constraint_name: str) -> None:
        self.constraint_name = constraint_name


class _UniqueViolation(Exception):
    """What psycopg raises: the index in its diagnostics."""

    def __init__(self, constraint_name: str) -> None:
        super().__init__(f"duplicate key value violates unique constraint {constraint_name!r}")
        self.diag = _Diagnostics(constraint_name)


def refused_by(orig: Exception) -> IntegrityError:
    return IntegrityError("INSERT INTO projects ...", {}, orig)


def guarded(held: dict[str, str], error: IntegrityError) -> None:
    variants = CaseVariants("create_projects", "project", ["prj-1"], lambda connection: held)
    with variants.guard(_Connection()):  # type: ignore[arg-type]
        raise error


@pytest.mark.parametrize("orig", [
    _UniqueViolation("uq_projects_lower_project_id"),
    sqlite3.IntegrityError("UNIQUE constraint failed: index 'uq_projects_lower_project_id'"),
])
def test_the_index_refusing_a_case_variant_is_the_checks_refusal(orig: Exception) -> None:
    with pytest.raises(BusinessRuleViolation, match=r"^create_projects refused, nothing written: project 'prj-1' differs only in case from the existing project 'PRJ-1'"):
        guarded({"prj-1": "PRJ-1"}, refused_by(orig))


def test_the_index_refusing_the_same_id_written_at_once_is_left_transient() -> None:
    # PostgreSQL's ON CONFLICT settles its own key only: the same id inserted by two transactions at
    # once can meet the lower(id) index instead; nothing is held in another case, so it is retried
    with pytest.raises(IntegrityError):
        guarded({}, refused_by(_UniqueViolation("uq_projects_lower_project_id")))


@pytest.mark.parametrize("orig", [
    _UniqueViolation("projects_pkey"),
    sqlite3.IntegrityError("NOT NULL constraint failed: projects.name"),
])
def test_other_integrity_errors_pass_through_untouched(orig: Exception) -> None:
    with pytest.raises(IntegrityError):
        guarded({"prj-1": "PRJ-1"}, refused_by(orig))
