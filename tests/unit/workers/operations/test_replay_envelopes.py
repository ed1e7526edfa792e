"""What a replay sends: the envelope upcast to the newest version, or the operator's correction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.registry import ContractRegistry
from shared.errors import InvalidContract, UnknownContract
from workers.operations.dead_letter_queue import DeadLetter
from workers.operations.dead_letter_records import DeadLetterRecord
from workers.operations.dead_letter_repair import Correction, corrected_envelope, newest_version_of

V1_ESTIMATE = {"project_id": "PRJ-US-100", "line_number": 1, "expense_category": "HOTEL", "date": "2026-12-01",
               "amount": "360.00", "currency": "USD"}


def dead_letter(body: dict[str, Any]) -> DeadLetter:
    record = DeadLetterRecord(
        side="dataverse", row_id=1, message_id=body["message_id"], queue_name="dataverse.commands",
        actor_name="receive_dataverse_commands", contract=body["contract"], correlation_id=body["correlation_id"],
        error_kind="permanent", error_type="BusinessRuleViolation", error="project does not exist", traceback=None,
        attempts=1, body=json.dumps(body), dead_at=datetime.now(UTC),
    )
    return DeadLetter(body["message_id"], "dataverse.commands", record, (), broker_checked=False)


def test_a_v1_envelope_is_sent_as_v2_with_the_same_identity(registry: ContractRegistry, envelope) -> None:
    original = envelope("create_expense_estimates", 1, {"rows": [V1_ESTIMATE]})

    sent = json.loads(newest_version_of(registry, json.dumps(original)))

    assert sent["version"] == 2
    assert sent["payload"]["rows"][0]["quantity"] == "1" and sent["payload"]["rows"][0]["unit_cost"] == "360.00"
    assert "amount" not in sent["payload"]["rows"][0]
    assert {key: sent[key] for key in ("message_id", "correlation_id", "legal_entity")} == {
        key: original[key] for key in ("message_id", "correlation_id", "legal_entity")
    }
    registry.decode(json.dumps(sent))  # what a consumer will decode


@pytest.mark.parametrize(
    ("contract", "version", "payload", "error"),
    [
        ("create_unicorns", 1, {"rows": []}, UnknownContract),
        ("create_transaction_categories", 1, {"rows": [{"category": "TAXI"}]}, InvalidContract),
    ],
)
def test_a_letter_that_still_does_not_validate_is_refused(registry: ContractRegistry, envelope, contract, version, payload, error) -> None:
    with pytest.raises(error):
        newest_version_of(registry, json.dumps(envelope(contract, version, payload, legal_entity=None)))


def test_a_corrected_payload_keeps_the_original_envelope_and_version(envelope) -> None:
    original = envelope("create_expense_estimates", 1, {"rows": [{**V1_ESTIMATE, "amount": "-1"}]})

    corrected = json.loads(corrected_envelope(dead_letter(original), Correction({"rows": [V1_ESTIMATE]}, source="fix.json")))

    assert corrected["payload"] == {"rows": [V1_ESTIMATE]}
    assert corrected["version"] == 1 and corrected["message_id"] == original["message_id"]


def test_a_corrected_envelope_keeps_the_message_id_and_options_override_it(envelope) -> None:
    original = envelope("create_expense_categories", 1, {"rows": []}, legal_entity=None)
    whole = {**original, "message_id": "00000000-0000-4000-8000-000000000000", "correlation_id": "fixed"}

    corrected = json.loads(
        corrected_envelope(dead_letter(original), Correction(whole, source="fix.json", legal_entity="USMF"))
    )

    assert corrected["message_id"] == original["message_id"]
    assert (corrected["correlation_id"], corrected["legal_entity"]) == ("fixed", "USMF")


def test_a_correction_that_is_no_envelope_is_refused(envelope) -> None:
    original = envelope("create_expense_categories", 1, {"rows": []})

    with pytest.raises(InvalidContract, match="envelope.version"):
        corrected_envelope(dead_letter(original), Correction({"rows": []}, source="fix.json", version=0))
