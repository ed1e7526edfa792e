"""Property tests: whatever arrives, decode ends in a contract or a permanent error; valid rows survive the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.catalog import default_registry
from contracts.registry import Decoded
from shared.errors import PermanentError

from ..messages import envelope_document
from .strategies import json_values, payload_strategy

REGISTRY = default_registry()
CONTRACT_VERSIONS = [(contract, version) for contract in REGISTRY for version in range(1, contract.latest + 1)]
FIELD_NAMES = sorted(
    {name for contract, version in CONTRACT_VERSIONS for name in contract.model(version).model_fields}
    | {"amount", "quantity", "unit_cost", "currency", "project_id", "line_number", "date", "lines"}
)
#: Whole-body garbage is cheap: many examples. Per-contract properties run once per contract version.
GARBAGE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_CONTRACT = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode_outcome(body: str | bytes) -> Decoded[Any] | PermanentError:
    """Decode, letting only a permanent error through as a value; anything else fails the test."""
    try:
        return REGISTRY.decode(body)
    except PermanentError as error:
        return error


contract_names = st.sampled_from([contract.name for contract, _ in CONTRACT_VERSIONS]) | st.text(max_size=20)
versions = st.integers(min_value=-2, max_value=5) | json_values
legal_entities = st.sampled_from([None, "USMF", "usmf", "DE01"]) | json_values
garbage_rows = st.lists(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=8), max_size=3)
garbage_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"rows": json_values}),
    st.fixed_dictionaries({"rows": garbage_rows}),
)


@given(document=json_values)
@GARBAGE
def test_any_json_document_as_a_body_ends_in_a_permanent_error_or_a_contract(document):
    outcome = decode_outcome(json.dumps(document))

    assert isinstance(outcome, (PermanentError, Decoded))


@given(body=st.binary(max_size=200) | st.text(max_size=200))
@GARBAGE
def test_any_bytes_as_a_body_end_in_a_permanent_error(body):
    assert isinstance(decode_outcome(body), PermanentError)


@given(contract=contract_names, version=versions, legal_entity=legal_entities, payload=garbage_payloads)
@GARBAGE
def test_an_envelope_with_any_payload_ends_in_a_permanent_error_or_a_contract(contract, version, legal_entity, payload):
    body = json.dumps(envelope_document(contract, version, payload, legal_entity=legal_entity))

    outcome = decode_outcome(body)

    assert isinstance(outcome, (PermanentError, Decoded))


@pytest.mark.parametrize("contract, version", CONTRACT_VERSIONS, ids=lambda v: getattr(v, "name", str(v)))
@given(data=st.data())
@PER_CONTRACT
def test_a_valid_payload_with_one_field_spoilt_ends_in_a_permanent_error_or_a_contract(contract, version, data):
    payload = data.draw(payload_strategy(contract.model(version)))
    row = data.draw(st.sampled_from(payload["rows"]))
    field = data.draw(st.sampled_from(sorted(row) + ["unexpected"]))
    row[field] = data.draw(json_values)

    outcome = decode_outcome(json.dumps(envelope_document(contract.name, version, payload, legal_entity="USMF")))

    assert isinstance(outcome, (PermanentError, Decoded))


@pytest.mark.parametrize("contract, version", CONTRACT_VERSIONS, ids=lambda v: getattr(v, "name", str(v)))
@given(data=st.data())
@PER_CONTRACT
def test_valid_rows_survive_the_json_round_trip_unchanged(contract, version, data):
    model = contract.model(version)
    try:
        sent = model.model_validate(data.draw(payload_strategy(model)))
    except ValidationError:
        data.draw(st.nothing())  # two rows drew the same integration key: not a valid batch

    wire = sent.model_dump(mode="json")
    received = model.model_validate(wire)
    from_text = model.model_validate_json(json.dumps(wire))

    assert received == sent
    assert from_text == sent
    assert received.model_dump(mode="json") == wire  # Decimals keep their exact digits, e.g. "0.10"


@pytest.mark.parametrize("contract, version", CONTRACT_VERSIONS, ids=lambda v: getattr(v, "name", str(v)))
@given(data=st.data())
@PER_CONTRACT
def test_a_valid_message_of_any_version_decodes_to_the_newest_version(contract, version, data):
    payload = data.draw(payload_strategy(contract.model(version)))
    legal_entity = "USMF" if contract.scope.value == "legal_entity" else None

    outcome = decode_outcome(json.dumps(envelope_document(contract.name, version, payload, legal_entity=legal_entity)))

    if isinstance(outcome, PermanentError):
        assert "repeats" in str(outcome), outcome  # only a drawn duplicate key may be refused
    else:
        assert outcome.version == contract.latest
        assert type(outcome.payload) is contract.versions[-1]
