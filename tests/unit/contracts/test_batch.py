"""Batches: like a dual-write transaction, 1 to 1,000 rows, each integration key once."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.batch import MAX_ROWS
from contracts.expense_categories import CreateExpenseCategoriesV1
from contracts.projects import CreateExpenseEstimatesV2
from contracts.transaction_categories import CreateTransactionCategoriesV1


def categories(count: int) -> list[dict[str, Any]]:
    return [{"category": f"CAT-{n:04d}", "name": f"Category {n}"} for n in range(count)]


def estimate_line(project_id: str, line_number: int) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "line_number": line_number,
        "expense_category": "HOTEL",
        "date": "2026-03-02",
        "quantity": "1",
        "unit_cost": "99.00",
        "currency": "EUR",
    }


def test_a_batch_of_exactly_1000_rows_is_accepted():
    batch = CreateTransactionCategoriesV1.model_validate({"rows": categories(MAX_ROWS)})

    assert len(batch.rows) == 1000
    assert batch.rows[-1].category == "CAT-0999"


def test_a_batch_of_1001_rows_is_refused():
    with pytest.raises(ValidationError) as refused:
        CreateTransactionCategoriesV1.model_validate({"rows": categories(MAX_ROWS + 1)})

    [problem] = refused.value.errors()
    assert problem["loc"] == ("rows",)
    assert problem["type"] == "too_long"


def test_a_batch_of_no_rows_is_refused():
    with pytest.raises(ValidationError) as refused:
        CreateTransactionCategoriesV1.model_validate({"rows": []})

    [problem] = refused.value.errors()
    assert problem["loc"] == ("rows",)
    assert problem["type"] == "too_short"


def test_a_repeated_integration_key_is_refused_naming_the_row_that_repeats_it():
    rows = categories(3) + [{"category": "CAT-0001", "name": "Again"}]

    with pytest.raises(ValidationError, match=r"rows\.3 repeats the integration key \(category=CAT-0001\)"):
        CreateTransactionCategoriesV1.model_validate({"rows": rows})


def test_keys_are_kept_as_sent_and_two_that_differ_only_in_case_are_refused():
    rows = [{"category": "travel", "name": "Travel"}, {"category": "TRAVEL", "name": "Travel again"}]

    with pytest.raises(ValidationError, match=r"rows\.1 repeats the integration key of rows\.0 in another case "
                       r"\(category=TRAVEL; category=travel\)"):
        CreateTransactionCategoriesV1.model_validate({"rows": rows})
    [alone] = CreateTransactionCategoriesV1.model_validate({"rows": rows[:1]}).rows
    assert alone.category == "travel"


def test_a_composite_key_repeats_only_when_every_part_repeats():
    distinct = [estimate_line("PRJ-1", 1), estimate_line("PRJ-1", 2), estimate_line("PRJ-2", 1)]

    batch = CreateExpenseEstimatesV2.model_validate({"rows": distinct})

    assert [(row.project_id, row.line_number) for row in batch.rows] == [("PRJ-1", 1), ("PRJ-1", 2), ("PRJ-2", 1)]
    with pytest.raises(ValidationError, match=r"rows\.3 repeats the integration key \(project_id=PRJ-1, line_number=2\)"):
        CreateExpenseEstimatesV2.model_validate({"rows": distinct + [estimate_line("PRJ-1", 2)]})
    with pytest.raises(ValidationError, match=r"rows\.3 repeats the integration key of rows\.1 in another case"):
        CreateExpenseEstimatesV2.model_validate({"rows": distinct + [estimate_line("prj-1", 2)]})


def test_an_unknown_field_in_a_row_is_refused():
    row = {"expense_category": "HOTEL-US", "name": "Hotel", "shared_category": "TRAVEL", "colour": "blue"}

    with pytest.raises(ValidationError) as refused:
        CreateExpenseCategoriesV1.model_validate({"rows": [row]})

    assert [problem["loc"] for problem in refused.value.errors()] == [("rows", 0, "colour")]


def test_an_unknown_field_beside_the_rows_is_refused():
    with pytest.raises(ValidationError) as refused:
        CreateTransactionCategoriesV1.model_validate({"rows": categories(1), "total": 1})

    assert [problem["loc"] for problem in refused.value.errors()] == [("total",)]


def test_a_batch_cannot_be_changed_once_validated():
    batch = CreateTransactionCategoriesV1.model_validate({"rows": categories(1)})

    with pytest.raises(ValidationError):
        batch.rows[0].name = "Renamed"  # type: ignore[misc]
