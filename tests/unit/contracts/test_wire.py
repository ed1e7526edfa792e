"""The documented wire types and nothing coerced into them: each refusal names the field and the fix.

Amounts travel only as JSON strings of plain decimal digits; whole numbers, true/false, dates and
times only in their own JSON form; ids and company codes exactly as sent; text without control
characters. What a publisher gets wrong is refused as an invalid contract, never read as something
it did not send.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from contracts.actuals import ActualPostingV1, ActualV1
from contracts.envelope import Envelope
from contracts.expense_reports import ApprovalV1, ExpenseLineV1
from contracts.fields import Description, ExchangeRate, Name, Person
from contracts.money import Amount, Quantity
from contracts.projects import NewProjectV1, ProjectV2
from contracts.transaction_categories import TransactionCategoryV1
from contracts.wire import _fixed_point, decimal_text
from shared.errors import InvalidContract

from ..messages import envelope_document

amount = TypeAdapter(Amount)
quantity = TypeAdapter(Quantity)
rate = TypeAdapter(ExchangeRate)
AMOUNT_PATTERN = Amount.__metadata__[-1].json_schema["pattern"]  # what the published JSON Schemas say

LINE = {"line_number": 1, "expense_category": "HOTEL", "date": "2026-11-02", "amount": "125.40", "currency": "EUR"}
PROJECT = {"project_id": "PRJ-US-100", "name": "Rollout", "project_manager": "maria", "billable": True}


def refusal(model: Any, data: dict[str, Any]) -> dict[str, Any]:
    """The one problem pydantic finds in ``data``."""
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)
    [problem] = refused.value.errors(include_url=False)
    return problem


def decode_reason(registry: Any, contract: str, version: int, rows: list[dict[str, Any]], **envelope: Any) -> str:
    envelope.setdefault("legal_entity", "USPM")
    body = json.dumps(envelope_document(contract, version, {"rows": rows}, **envelope))
    with pytest.raises(InvalidContract) as refused:
        registry.decode(body)
    return str(refused.value)


# --- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sent, kind", [(10, "a number"), (10.5, "a number"), (True, "true or false"), ([1], "an array")])
def test_an_amount_that_is_not_a_json_string_is_refused(sent, kind):
    with pytest.raises(ValidationError) as refused:
        amount.validate_python(sent)

    [problem] = refused.value.errors()
    assert problem["msg"] == f'must be a JSON string such as "125.40", not {kind}'


@pytest.mark.parametrize("sent", ["1e3", "1E+2", " 10.00 ", "10.00 ", "+5", ".5", "5.", "1_000", "١٢", "NaN", "Infinity", "0x10", "1,5", ""])
def test_an_amount_not_in_plain_decimal_digits_is_refused(sent):
    with pytest.raises(ValidationError, match="must be plain decimal digits with an optional point"):
        amount.validate_python(sent)


@pytest.mark.parametrize("sent", ["-3.5", "-0", "-0.00"])
def test_a_negative_amount_is_refused_even_minus_zero(sent):
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        amount.validate_python(sent)


def test_an_amount_with_too_many_digits_says_which_limit():
    with pytest.raises(ValidationError, match="no more than 2 decimal places"):
        amount.validate_python("1.005")
    with pytest.raises(ValidationError, match="no more than 15 digits before the point"):
        amount.validate_python("1000000000000000")


@given(sent=st.text(alphabet="0123456789.-+eE _", max_size=20))
@settings(max_examples=400, deadline=None)
def test_an_amount_is_accepted_exactly_when_the_published_json_schema_accepts_it(sent):
    documented = re.fullmatch(AMOUNT_PATTERN, sent) is not None
    try:
        amount.validate_python(sent)
        accepted = True
    except ValidationError:
        accepted = False

    assert accepted == documented, sent


@given(sent=st.integers(-(10**6), 10**6) | st.floats(allow_nan=True, allow_infinity=True))
def test_no_json_number_is_ever_an_amount_quantity_or_rate(sent):
    for adapter in (amount, quantity, rate):
        with pytest.raises(ValidationError, match="must be a JSON string"):
            adapter.validate_python(sent)


def test_amounts_built_in_python_are_exact_and_travel_in_the_documented_form():
    line = ActualPostingV1(
        actual_id="A-1", voucher="V-1", posted_on="2026-11-02", accounting_amount=Decimal("-0.00"),
        accounting_currency="EUR", exchange_rate=Decimal("1E-8"),
    )

    wire = line.model_dump(mode="json")

    assert (wire["accounting_amount"], wire["exchange_rate"]) == ("0.00", "0.00000001")
    assert ActualPostingV1.model_validate(wire) == line


def test_quantities_and_rates_are_strings_of_digits_too():
    assert quantity.validate_python("0.5") == Decimal("0.5")
    assert rate.validate_python("1.0850") == Decimal("1.085")
    for adapter, sent in ((quantity, "3e0"), (quantity, " 3"), (rate, "1.085e0"), (rate, "-1")):
        with pytest.raises(ValidationError):
            adapter.validate_python(sent)


def test_an_amount_sent_as_a_number_is_an_invalid_contract_naming_the_field(registry):
    reason = decode_reason(registry, "create_expense_reports", 1, [
        {"report_id": "ER-1", "worker": "alice", "lines": [{**LINE, "amount": 125.4}]},
    ])

    assert reason == 'create_expense_reports v1: payload.rows.0.lines.0.amount: must be a JSON string such as "125.40", not a number'


def test_a_v1_estimate_with_an_exponent_names_the_publishers_own_field(registry):
    row = {"project_id": "PRJ-1", "line_number": 1, "expense_category": "HOTEL", "date": "2026-11-02",
           "amount": "1e3", "currency": "USD"}

    reason = decode_reason(registry, "create_expense_estimates", 1, [row])

    assert reason.startswith("create_expense_estimates v1: payload.rows.0.amount: must be plain decimal digits")


# --- no type coercion ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_an_envelope_version_must_be_a_json_integer(envelope, version):
    problem = refusal(Envelope, envelope("create_projects", version, {"rows": []}))

    assert problem["loc"] == ("version",)


def test_a_version_sent_as_a_string_is_an_invalid_contract_naming_the_envelope_field(registry):
    body = json.dumps(envelope_document("create_transaction_categories", "1", {"rows": [{"category": "TAXI", "name": "Taxi"}]},
                                        legal_entity=None))

    with pytest.raises(InvalidContract, match=r"^envelope\.version: Input should be a valid integer"):
        registry.decode(body)


@pytest.mark.parametrize("billable", ["yes", "true", 1, 0, "1", None])
def test_billable_must_be_json_true_or_false(billable):
    problem = refusal(NewProjectV1, {**PROJECT, "billable": billable})

    assert problem["loc"] == ("billable",)


@pytest.mark.parametrize("field, sent", [("line_number", "1"), ("line_number", 1.0), ("line_number", True)])
def test_a_line_number_must_be_a_json_integer(field, sent):
    problem = refusal(ExpenseLineV1, {**LINE, field: sent})

    assert problem["loc"] == (field,)


def test_a_row_version_must_be_a_json_integer():
    row = {"project_id": "P-1", "name": "P", "status": "active", "row_version": "3", "row_origin": "dataverse"}

    assert refusal(ProjectV2, row)["loc"] == ("row_version",)


def test_an_option_value_must_be_a_json_integer():
    actual = {
        "actual_id": "A-1", "expense_id": "E-1", "project_id": "P-1", "expense_category": "HOTEL",
        "transaction_classification": 192350001, "transaction_type": 192350000, "date": "2026-11-02",
        "amount": "1.00", "currency": "EUR", "accounting_amount": "1.00", "accounting_currency": "EUR",
        "exchange_rate": "1",
    }
    assert ActualV1.model_validate(actual).transaction_classification == 192350001

    problem = refusal(ActualV1, {**actual, "transaction_classification": "192350001"})

    assert problem["loc"] == ("transaction_classification",)
    assert problem["msg"] == "must be one of the option values as a JSON integer, not a string"


@pytest.mark.parametrize("sent", [1793491200, "2026-11-02T00:00:00", "20261102", "2026-11-2", " 2026-11-02"])
def test_a_date_must_be_a_yyyy_mm_dd_string(sent):
    problem = refusal(ExpenseLineV1, {**LINE, "date": sent})

    assert problem["loc"] == ("date",)
    assert problem["msg"].startswith('must be a date as a JSON string "YYYY-MM-DD"')


@pytest.mark.parametrize("sent", [1793491200, "1793491200", "2026-11-25"])
def test_a_time_must_be_an_iso_8601_string(envelope, sent):
    problem = refusal(Envelope, envelope("create_projects", 1, {"rows": []}, occurred_at=sent))

    assert problem["loc"] == ("occurred_at",)


@pytest.mark.parametrize("sent", ["8f0c2f3a5b7e4c1d9a2b6e4f3d2c1b0a", "{8f0c2f3a-5b7e-4c1d-9a2b-6e4f3d2c1b0a}", 42])
def test_a_message_id_must_be_a_uuid_with_dashes(envelope, sent):
    problem = refusal(Envelope, envelope("create_projects", 1, {"rows": []}, message_id=sent))

    assert problem["loc"] == ("message_id",)


# --- ids kept as sent ----------------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["prj-us-100", "Prj-Us-100", "PRJ-US-100"])
def test_an_id_is_kept_exactly_as_sent(sent):
    assert NewProjectV1.model_validate({**PROJECT, "project_id": sent}).project_id == sent


def test_a_user_name_in_upper_case_is_refused_naming_the_name_to_send():
    problem = refusal(ApprovalV1, {"report_id": "ER-1", "approver": "Maria"})

    assert problem["loc"] == ("approver",)
    assert problem["msg"] == "user names are lower case: send 'maria', not 'Maria'"
    assert TypeAdapter(Person).validate_python("maria.rossi@contoso") == "maria.rossi@contoso"


# --- text --------------------------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x1f", "\t", "\n"])
def test_a_name_with_a_control_character_inside_is_refused(character):
    problem = refusal(TransactionCategoryV1, {"category": "TAXI", "name": f"Ta{character}xi"})

    assert problem["loc"] == ("name",)
    assert problem["msg"] == f"must not contain control character U+{ord(character):04X} (at position 2)"


def test_free_text_may_hold_line_breaks_and_tabs_but_no_other_control_character():
    kept = TypeAdapter(Description).validate_python("Taxi\tto the airport\r\nand back")

    assert kept == "Taxi\tto the airport\r\nand back"
    with pytest.raises(ValidationError, match="control character U\\+0000"):
        TypeAdapter(Description).validate_python("Taxi\x00")


def test_a_nul_in_a_payload_is_an_invalid_contract_naming_the_field(registry):
    reason = decode_reason(
        registry, "create_transaction_categories", 1, [{"category": "TAXI", "name": "Taxi", "description": "a\u0000b"}],
        legal_entity=None,
    )

    assert reason == "create_transaction_categories v1: payload.rows.0.description: must not contain control character U+0000 (at position 1)"


@pytest.mark.parametrize("field", ["correlation_id", "causation_id"])
def test_a_control_character_in_the_envelope_is_refused(envelope, field):
    problem = refusal(Envelope, envelope("create_projects", 1, {"rows": []}, **{field: "erp:\u0000:1"}))

    assert problem["loc"] == (field,)


@given(text=st.text(max_size=30), position=st.integers(0, 30), code=st.integers(0, 0x1F))
def test_any_name_holding_a_c0_control_character_is_refused(text, position, code):
    name = "A" + text[:position] + chr(code) + text[position:] + "Z"  # inside: trimming cannot remove it

    with pytest.raises(ValidationError, match="control character"):
        TypeAdapter(Name).validate_python(name)


# -- the fast paths hold the same rules ----------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_written_in_fixed_point_as_format_f_writes_it(value: Decimal) -> None:
    expected = format(value.copy_abs() if value.is_zero() else value, "f")
    assert _fixed_point(value) == expected


def test_a_field_whose_limits_a_documented_string_could_fail_is_refused_when_it_is_defined() -> None:
    # Up to 10 digits and 2 places documented, but at most 8 digits in all: "123456789.12" would
    # pass the documented form and fail the limit, so the shortcut would let it through.
    narrow = Annotated[
        Decimal,
        Field(ge=0, max_digits=8, decimal_places=2),
        decimal_text(digits=10, places=2, example="1.00", zero_allowed=True),
    ]
    with pytest.raises(TypeError, match="max_digits=8"):
        TypeAdapter(narrow)
