"""The envelope: strict, company codes in upper case, times with their time zone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from contracts.envelope import Envelope, Side, new_envelope


def test_a_well_formed_envelope_is_accepted_as_sent(envelope):
    document = envelope("create_projects", 1, {"rows": []}, causation_id="previous-message")

    parsed = Envelope.model_validate(document)

    assert parsed.message_id == uuid.UUID(document["message_id"])
    assert parsed.contract == "create_projects"
    assert parsed.version == 1
    assert parsed.source is Side.UPSTREAM
    assert parsed.correlation_id == "EXP-0001"
    assert parsed.causation_id == "previous-message"
    assert parsed.occurred_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def test_an_unknown_field_is_refused(envelope):
    document = envelope("create_projects", 1, {"rows": []}, priority="high")

    with pytest.raises(ValidationError) as refused:
        Envelope.model_validate(document)

    [problem] = refused.value.errors()
    assert problem["loc"] == ("priority",)
    assert problem["type"] == "extra_forbidden"


@pytest.mark.parametrize("code", ["USMF", "DE01", "A", "12345678"])
def test_a_legal_entity_in_upper_case_is_kept_as_sent(envelope, code):
    parsed = Envelope.model_validate(envelope("create_projects", 1, {"rows": []}, legal_entity=code))

    assert parsed.legal_entity == code


@pytest.mark.parametrize("sent, wanted", [("usmf", "USMF"), ("UsMf", "USMF"), ("de01", "DE01")])
def test_a_legal_entity_in_lower_case_is_refused_naming_the_code_to_send(envelope, sent, wanted):
    with pytest.raises(ValidationError) as refused:
        Envelope.model_validate(envelope("create_projects", 1, {"rows": []}, legal_entity=sent))

    [problem] = refused.value.errors()
    assert problem["loc"] == ("legal_entity",)
    assert problem["msg"] == f"company codes are upper case: send {wanted!r}, not {sent!r}"


@pytest.mark.parametrize("legal_entity", ["", "US-MF", "us mf", "ABCDEFGHI", "usmf\n", "ÜSMF"])
def test_a_legal_entity_outside_the_company_code_pattern_is_refused(envelope, legal_entity):
    document = envelope("create_projects", 1, {"rows": []}, legal_entity=legal_entity)

    with pytest.raises(ValidationError) as refused:
        Envelope.model_validate(document)

    assert [problem["loc"] for problem in refused.value.errors()] == [("legal_entity",)]


def test_shared_reference_data_may_travel_without_a_legal_entity(envelope):
    parsed = Envelope.model_validate(envelope("create_transaction_categories", 1, {"rows": []}, legal_entity=None))

    assert parsed.legal_entity is None


@pytest.mark.parametrize("occurred_at", ["2026-03-01T09:30:00", datetime(2026, 3, 1, 9, 30)])
def test_a_time_without_its_time_zone_is_refused(envelope, occurred_at):
    document = envelope("create_projects", 1, {"rows": []}, occurred_at=occurred_at)

    with pytest.raises(ValidationError) as refused:
        Envelope.model_validate(document)

    [problem] = refused.value.errors()
    assert problem["loc"] == ("occurred_at",)
    assert problem["type"] == "timezone_aware"


def test_a_time_in_another_zone_names_the_same_instant(envelope):
    parsed = Envelope.model_validate(envelope("create_projects", 1, {"rows": []}, occurred_at="2026-03-01T11:30:00+02:00"))

    assert parsed.occurred_at == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert parsed.occurred_at.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("version", [0, -1])
def test_a_version_below_one_is_refused(envelope, version):
    with pytest.raises(ValidationError):
        Envelope.model_validate(envelope("create_projects", version, {"rows": []}))


def test_an_envelope_cannot_be_changed_after_it_is_built(envelope):
    parsed = Envelope.model_validate(envelope("create_projects", 1, {"rows": []}))

    with pytest.raises(ValidationError):
        parsed.legal_entity = "OTHER"  # type: ignore[misc]


def test_new_envelope_stamps_a_fresh_id_and_an_aware_time():
    before = datetime.now(UTC)

    first = new_envelope(contract="create_projects", version=1, source=Side.UPSTREAM, payload={}, correlation_id="P-1", legal_entity="USMF")
    second = new_envelope(contract="create_projects", version=1, source=Side.UPSTREAM, payload={}, correlation_id="P-1", legal_entity="USMF")

    assert first.message_id != second.message_id
    assert first.occurred_at.tzinfo is not None and first.occurred_at >= before
    assert first.legal_entity == "USMF"


def test_new_envelope_keeps_a_given_message_id_for_redelivery():
    message_id = uuid.uuid4()

    built = new_envelope(
        contract="create_projects", version=1, source=Side.FINANCE, payload={}, correlation_id="P-1", message_id=message_id
    )

    assert built.message_id == message_id


def test_the_envelope_survives_its_own_json_round_trip(envelope):
    parsed = Envelope.model_validate(envelope("create_projects", 1, {"rows": [{"amount": "0.10"}]}))

    assert Envelope.model_validate_json(parsed.model_dump_json()) == parsed


def test_a_naive_time_is_refused_even_from_python_code():
    with pytest.raises(ValidationError):
        Envelope(
            message_id=uuid.uuid4(),
            contract="create_projects",
            version=1,
            source=Side.UPSTREAM,
            correlation_id="P-1",
            occurred_at=datetime.now(timezone.utc).replace(tzinfo=None),
            payload={},
        )
