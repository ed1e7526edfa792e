"""Paging and checkpoints of an initial sync, on plain data: which rows a page sends, refuses, and where it ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contracts.envelope import Envelope, Side
from workers.bridge.initial_sync import key_text, row_keys, run_of
from workers.finance.exports import EXPORTS as FINANCE_EXPORTS
from workers.dataverse.exports import EXPORTS as DATAVERSE_EXPORTS
from workers.initial_sync_export import correlation_id, sort_page

EXPENSE_CATEGORIES = FINANCE_EXPORTS["msdyn_expensecategories"]
TRANSACTION_CATEGORIES = DATAVERSE_EXPORTS["msdyn_transactioncategories"]


def category(number: int, company: str = "USMF", **changes: str) -> dict[str, str]:
    return {
        "legal_entity": company,
        "expense_category": f"CAT{number:03d}",
        "name": f"Category {number}",
        "shared_category": "TRAVEL",
        "expense_type": "hotel",
        **changes,
    }


def test_a_full_page_with_a_row_more_behind_it_is_not_the_last_and_ends_at_its_own_last_key() -> None:
    # The reader asks for page_size + 1 rows: the extra one only says another page follows
    records = [category(n) for n in range(4)]
    page = sort_page(records, EXPENSE_CATEGORIES, page_size=3)
    assert not page.finished
    assert page.rows_read == 3 and page.rows_sent == 3
    assert page.last == ["USMF", "CAT002"]


def test_a_short_page_is_the_last_and_an_exact_multiple_needs_no_empty_page_after_it() -> None:
    assert sort_page([category(n) for n in range(2)], EXPENSE_CATEGORIES, page_size=3).finished
    exact = sort_page([category(n) for n in range(3)], EXPENSE_CATEGORIES, page_size=3)
    assert exact.finished and exact.rows_read == 3
    empty = sort_page([], EXPENSE_CATEGORIES, page_size=3)
    assert empty.finished and empty.last is None and empty.rows_sent == 0


def test_rows_are_grouped_by_company_and_carried_in_the_maps_field_names() -> None:
    page = sort_page([category(1, "USMF"), category(2, "DEMF"), category(3, "USMF")], EXPENSE_CATEGORIES, page_size=10)
    assert sorted(page.batches) == ["DEMF", "USMF"]
    assert [row["expense_category"] for row in page.batches["USMF"]] == ["CAT001", "CAT003"]
    assert page.batches["DEMF"][0] == {
        "expense_category": "CAT002", "name": "Category 2", "transaction_category": "TRAVEL", "expense_type": "hotel"
    }


def test_every_row_that_does_not_fit_the_contract_is_refused_with_its_key_and_field_and_the_rest_are_sent() -> None:
    records = [
        category(1),
        category(2, expense_type="spaceship"),
        category(3, name="  "),
        category(4),
        category(5, expense_category="NOT A CODE"),
        category(6, expense_type="yacht"),
        category(7, shared_category="bad code"),
        category(8, expense_type=""),
    ]
    page = sort_page(records, EXPENSE_CATEGORIES, page_size=10)
    refused = dict((tuple(key), reason) for key, reason in page.failed)
    assert set(refused) == {("USMF", code) for code in ("CAT002", "CAT003", "NOT A CODE", "CAT006", "CAT007", "CAT008")}
    assert len(page.failed) == 6 and page.rows_sent == 2 and page.rows_read == 8
    assert refused[("USMF", "CAT002")].startswith("expense_type:")
    assert refused[("USMF", "CAT003")].startswith("name:")
    assert refused[("USMF", "CAT007")].startswith("transaction_category:")
    # A refused row still moves the checkpoint: the next page starts after it
    assert page.last == ["USMF", "CAT008"]


def test_shared_reference_data_has_no_company_and_leaves_out_an_empty_description() -> None:
    page = sort_page(
        [{"category": "HOTEL", "name": "Hotel", "description": None}, {"category": "TAXI", "name": "Taxi", "description": "Cabs"}],
        TRANSACTION_CATEGORIES,
        page_size=5,
    )
    assert list(page.batches) == [None]
    assert page.batches[None] == [{"category": "HOTEL", "name": "Hotel"}, {"category": "TAXI", "name": "Taxi", "description": "Cabs"}]


def envelope(correlation: str, legal_entity: str | None = "USMF") -> Envelope:
    return Envelope(
        message_id=uuid.uuid4(),
        contract="msdyn_expensecategories",
        version=1,
        source=Side.FINANCE,
        legal_entity=legal_entity,
        correlation_id=correlation,
        occurred_at=datetime.now(UTC),
        payload={"rows": []},
    )


def test_a_synced_message_names_its_run_and_a_live_one_none() -> None:
    run_id = uuid.uuid4().hex
    assert run_of(envelope(correlation_id(run_id))) == run_id
    assert run_of(envelope("expense-category:USMF:HOTEL")) is None


def test_the_bridge_keys_rows_by_the_declared_key_taking_the_company_from_the_envelope() -> None:
    rows = [{"expense_category": "HOTEL"}, {"expense_category": "TAXI"}]
    keys = row_keys(("legal_entity", "expense_category"), rows, envelope("live"))
    assert keys == [key_text(["USMF", "HOTEL"]), key_text(["USMF", "TAXI"])] == ['["USMF","HOTEL"]', '["USMF","TAXI"]']
