"""Dead letters are grouped by cause: contract, error type and the error text with its values taken out."""

from __future__ import annotations

import hashlib

import pytest

from workers.operations.failure_causes import PATTERN_SOURCE_CHARACTERS, cause_of, message_pattern


@pytest.mark.parametrize(
    ("error", "pattern"),
    [
        ("project 'PRJ-US-100' does not exist", "project '<value>' does not exist"),
        ("report ER-0001 is posted; only a draft can be submitted", "report <id> is posted; only a draft can be submitted"),
        ("payload.rows.12.amount: Input should be greater than or equal to 0", "payload.rows.<n>.amount: Input should be greater than or equal to <n>"),
        ("message 5b0e0c0e-0000-4000-8000-000000000001 is broken", "message <id> is broken"),
        ("create_expense_estimates v1: payload.rows.0.amount: Field required", "create_expense_estimates v1: payload.rows.<n>.amount: Field required"),
        ("amount 12.50 exceeds 10", "amount <n> exceeds <n>"),
        ('unknown contract "create_unicorns"', "unknown contract '<value>'"),
    ],
)
def test_ids_numbers_and_quoted_values_become_placeholders(error: str, pattern: str) -> None:
    assert message_pattern(error) == pattern


def test_a_batch_of_bad_rows_has_the_pattern_of_one_bad_row() -> None:
    one = "create_expense_categories refused, nothing written: rows.0 (HOTEL): shared category 'HOTEL' is not enabled"
    three = (
        "create_expense_categories refused, nothing written: rows.0 (HOTEL): shared category 'HOTEL' is not enabled; "
        "rows.1 (MOTEL): shared category 'MOTEL' is not enabled; rows.2 (INN): shared category 'INN' is not enabled"
    )

    assert message_pattern(three) == message_pattern(one)
    assert message_pattern(one) == "create_expense_categories refused, nothing written: rows.<n> (<key>): shared category '<value>' is not enabled"


def test_different_problems_in_one_batch_are_all_kept() -> None:
    error = "x refused, nothing written: rows.0: project 'P1' does not exist; rows.1: project 'P2' is closed"

    assert message_pattern(error) == "x refused, nothing written: rows.<n>: project '<value>' does not exist; rows.<n>: project '<value>' is closed"


def test_the_same_cause_has_the_same_short_id_and_another_cause_another() -> None:
    first = cause_of("create_projects", "BusinessRuleViolation", "project 'P-1' is closed")
    again = cause_of("create_projects", "BusinessRuleViolation", "project 'P-2' is closed")
    other_contract = cause_of("set_project_status", "BusinessRuleViolation", "project 'P-1' is closed")
    other_type = cause_of("create_projects", "InvalidContract", "project 'P-1' is closed")

    assert first.cause_id == again.cause_id
    assert len(first.cause_id) == 8 and int(first.cause_id, 16) >= 0
    assert len({first.cause_id, other_contract.cause_id, other_type.cause_id}) == 3
    # stable across processes and releases: derived from the cause, not from the order of discovery
    assert first.cause_id == cause_of("create_projects", "BusinessRuleViolation", "project 'X' is closed").cause_id


def test_the_ids_of_ordinary_causes_are_those_of_earlier_releases() -> None:
    cause = cause_of("create_projects", "BusinessRuleViolation", "project 'P-1' is closed")

    key = "create_projects\x1fBusinessRuleViolation\x1fproject '<value>' is closed"
    assert cause.cause_id == hashlib.sha256(key.encode()).hexdigest()[:8]
    assert (cause.reason, cause.queue, cause.refused) == (None, None, False)


def test_a_refusal_is_grouped_by_reason_and_queue_whatever_its_text_and_contract() -> None:
    one = cause_of("create_projects", "Unauthenticated", "unsigned message", "finance.commands")
    other_text = cause_of("anything", "Unauthenticated", "unknown signing key 'k-1'", "finance.commands")
    other_queue = cause_of("create_projects", "Unauthenticated", "unsigned message", "dataverse.commands")
    other_reason = cause_of("create_projects", "Forbidden", "unsigned message", "finance.commands")
    not_refused = cause_of("create_projects", "InvalidContract", "unsigned message", "finance.commands")

    assert one == other_text and one.cause_id == other_text.cause_id
    assert (one.reason, one.contract, one.pattern, one.refused) == ("unauthenticated", None, "refused: unauthenticated", True)
    assert len({one.cause_id, other_queue.cause_id, other_reason.cause_id, not_refused.cause_id}) == 4
    assert not_refused.reason is None and not_refused.queue is None
    assert {cause_of(None, kind, "x", "q").reason for kind in ("Malformed", "ConflictingDuplicate", "Refused")} == {
        "malformed", "conflicting duplicate", "refused",
    }


def test_a_huge_error_text_is_read_in_bounded_time_and_only_its_start_makes_the_pattern() -> None:
    start = "x refused: " + "; ".join(f"problem{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}" for n in range(400))
    huge = start + "; " + "; ".join(f"word{n}" for n in range(200_000))

    assert message_pattern(huge) == message_pattern(huge[:PATTERN_SOURCE_CHARACTERS])
