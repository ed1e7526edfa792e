"""FixedPoint keeps Decimal amounts exact on SQLite, which has no decimal type of its own."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine, func, select
from sqlalchemy.exc import StatementError

from shared.sql_types import FixedPoint, Money

metadata = MetaData()
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("amount", Money),
    Column("rate", FixedPoint(scale=8)),
)


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def amounts(connection: Connection) -> list[Decimal | None]:
    return list(connection.scalars(select(ledger.c.amount).order_by(ledger.c.id)))


@pytest.mark.parametrize(
    "stored, read",
    [
        (Decimal("0.10"), "0.10"),
        (Decimal("0.1"), "0.10"),
        (Decimal("125.40"), "125.40"),
        (Decimal("-7.05"), "-7.05"),
        (Decimal("0"), "0.00"),
        (Decimal("1234567890123456.78"), "1234567890123456.78"),
        ("19.99", "19.99"),
        (42, "42.00"),
    ],
)
def test_an_amount_comes_back_exactly_as_stored(connection, stored, read):
    connection.execute(ledger.insert(), {"amount": stored})

    [value] = amounts(connection)

    assert isinstance(value, Decimal)
    assert str(value) == read


def test_sqlite_holds_whole_cents_underneath(connection):
    connection.execute(ledger.insert(), {"amount": Decimal("125.40")})

    raw = connection.exec_driver_sql("SELECT amount, typeof(amount) FROM ledger").one()

    assert tuple(raw) == (12540, "integer")


def test_a_missing_amount_stays_missing(connection):
    connection.execute(ledger.insert(), {"amount": None})

    assert amounts(connection) == [None]


def test_adding_ten_cents_a_thousand_times_sums_to_exactly_one_hundred(connection):
    connection.execute(ledger.insert(), [{"amount": Decimal("0.10")} for _ in range(1000)])

    total = connection.scalar(select(func.sum(ledger.c.amount)))

    assert total == Decimal("100.00")
    assert str(total) == "100.00"
    assert sum(0.10 for _ in range(1000)) != 100.0  # what a REAL column would have drifted to


def test_debits_and_credits_of_a_voucher_sum_to_exactly_zero(connection):
    lines = ["33.33", "33.33", "33.34", "-100.00"]
    connection.execute(ledger.insert(), [{"amount": Decimal(line)} for line in lines])

    assert connection.scalar(select(func.sum(ledger.c.amount))) == Decimal("0.00")


@pytest.mark.parametrize("value", [Decimal("0.105"), Decimal("2.675"), "0.001", Decimal("1E-3")])
def test_an_amount_with_more_decimals_than_the_column_is_refused_not_rounded(connection, value):
    with pytest.raises(StatementError, match="more than 2 decimals; round it explicitly first"):
        connection.execute(ledger.insert(), {"amount": value})


def test_a_binary_float_is_refused_because_it_is_not_the_amount_it_looks_like(connection):
    with pytest.raises(StatementError, match="more than 2 decimals"):
        connection.execute(ledger.insert(), {"amount": 0.1})


def test_a_rate_keeps_eight_decimals(connection):
    connection.execute(ledger.insert(), {"amount": Decimal("1.00"), "rate": Decimal("1.08765432")})

    rate = connection.scalar(select(ledger.c.rate))

    assert str(rate) == "1.08765432"
    with pytest.raises(StatementError, match="more than 8 decimals"):
        connection.execute(ledger.insert(), {"amount": Decimal("1.00"), "rate": Decimal("1.087654321")})


def test_trailing_zeros_beyond_the_scale_are_not_extra_decimals(connection):
    connection.execute(ledger.insert(), {"amount": Decimal("5.5000")})

    assert amounts(connection) == [Decimal("5.50")]
