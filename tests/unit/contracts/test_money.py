"""Money: Decimal amounts to the cent, ISO currency codes, rounding half up, exact on the wire."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.money import Amount, CurrencyCode, Quantity, to_cents
from contracts.projects import ExpenseEstimateLineV2

currency = TypeAdapter(CurrencyCode)
amount = TypeAdapter(Amount)
quantity = TypeAdapter(Quantity)


@pytest.mark.parametrize("code", ["USD", "EUR", "DKK", "JPY", "CHF"])
def test_an_iso_4217_code_is_accepted(code):
    assert currency.validate_python(code) == code


@pytest.mark.parametrize("code", ["usd", "Usd", "XYZ", "US", "USDX", "", "XAU"])
def test_anything_else_is_not_a_currency(code):
    with pytest.raises(ValidationError):
        currency.validate_python(code)


@pytest.mark.parametrize(
    "text, canonical",
    [("0", "0.00"), ("0.01", "0.01"), ("125.4", "125.40"), ("100", "100.00"), ("999999999999999.99", "999999999999999.99")],
)
def test_an_amount_to_the_cent_is_accepted_exactly_and_travels_on_in_cents(text, canonical):
    parsed = amount.validate_python(text)

    assert parsed == Decimal(text)
    assert str(parsed) == canonical


@pytest.mark.parametrize("text", ["0.001", "10.125", "2.675"])
def test_an_amount_with_three_decimals_is_refused(text):
    with pytest.raises(ValidationError, match="no more than 2 decimal places"):
        amount.validate_python(text)


@pytest.mark.parametrize("text", ["-0.01", "-100", "NaN", "Infinity", "1000000000000000.00", "twelve"])
def test_a_negative_infinite_or_oversized_amount_is_refused(text):
    with pytest.raises(ValidationError):
        amount.validate_python(text)


def test_a_quantity_has_up_to_four_decimals_and_is_positive():
    assert quantity.validate_python("0.5") == Decimal("0.5")
    assert quantity.validate_python("33.3333") == Decimal("33.3333")
    for refused in ["0", "-1", "1.00001"]:
        with pytest.raises(ValidationError):
            quantity.validate_python(refused)


@pytest.mark.parametrize(
    "value, cents",
    [
        ("0.005", "0.01"),
        ("2.675", "2.68"),  # 2.675 as a binary float is 2.67499999...; as a Decimal it rounds up
        ("1.005", "1.01"),
        ("0.0049", "0.00"),
        ("2.665", "2.67"),  # half up, not half even (banker's rounding would give 2.66)
        ("-0.005", "-0.01"),  # half away from zero on credits too
        ("99.999", "100.00"),
        ("12.3", "12.30"),
    ],
)
def test_to_cents_rounds_half_up(value, cents):
    rounded = to_cents(Decimal(value))

    assert rounded == Decimal(cents)
    assert str(rounded) == cents


def test_to_cents_does_not_agree_with_float_rounding():
    """The reason floats are kept away from amounts."""
    assert round(2.675, 2) == 2.67
    assert to_cents(Decimal("2.675")) == Decimal("2.68")


@pytest.mark.parametrize("text", ["0.10", "0.01", "1234567890123.45", "100.00", "7.00"])
def test_an_amount_survives_a_json_round_trip_digit_for_digit(text):
    line = ExpenseEstimateLineV2(
        project_id="PRJ-1",
        line_number=1,
        expense_category="HOTEL",
        date="2026-03-02",
        quantity="3",
        unit_cost=text,
        currency="EUR",
    )

    wire = json.dumps(line.model_dump(mode="json"))
    received = ExpenseEstimateLineV2.model_validate_json(wire)

    assert json.loads(wire)["unit_cost"] == text  # a string, never a JSON number
    assert str(received.unit_cost) == text
    assert received == line


def test_decimal_strings_keep_their_exact_sum_after_the_wire():
    """Ten lines of 0.10 add up to exactly 1.00 on the receiving side."""
    sent = [amount.validate_python("0.10") for _ in range(10)]

    received = [amount.validate_json(json.dumps(str(value))) for value in sent]

    assert sum(received, Decimal(0)) == Decimal("1.00")
    assert sum(0.10 for _ in range(10)) != 1.0
