"""Ids differing only in case from held ones: every one of a batch is named, with the id as held."""

from __future__ import annotations

import pytest

from shared.case_variants import case_variant_problems, refuse_case_variants
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
