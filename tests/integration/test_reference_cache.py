"""Finance keeps the reference data it read until `dualwrite setup` loads a new revision of it.

A company's set-up and the exchange rates are read once per revision (one small query per message
instead of five), and every `dualwrite setup` writes a new revision token, after which the next
read sees what it loaded. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, event

from tests.integration.engines import BACKENDS, engine_with
from workers.finance.setup_document import SetupDocument
from workers.finance.store.reference import company_setup, rates_into, save_setup
from workers.finance.tables import metadata

DEMO_SETUP = Path(__file__).parents[2] / "workers" / "demo_data" / "setup.yaml"


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with(request, tmp_path, metadata)


def document(us_hotel_rate: str = "0.15", eur_usd: str | None = None) -> SetupDocument:
    raw = yaml.safe_load(DEMO_SETUP.read_text())
    for entity in raw["legal_entities"]:
        for tax in entity["tax_codes"]:
            if tax["tax_code"] == "US-HOTEL":
                tax["rate"] = us_hotel_rate
    if eur_usd is not None:
        raw["exchange_rates"] = [
            {**rate, "rate": eur_usd} if (rate["from_currency"], rate["to_currency"]) == ("EUR", "USD") else rate
            for rate in raw["exchange_rates"]
        ]
    return SetupDocument.model_validate(raw)


def load(engine: Engine, setup: SetupDocument) -> None:
    with engine.begin() as connection:
        save_setup(connection, setup)


def statements_run(engine: Engine, read) -> tuple[object, int]:  # noqa: ANN001
    """What ``read`` returns, and how many SELECTs it ran (SQLite's BEGIN IMMEDIATE is not one)."""
    counted: list[str] = []

    def count(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            counted.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.connect() as connection:
            return read(connection), len(counted)
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_set_up_is_read_once_per_revision_and_afresh_after_each_setup(engine: Engine) -> None:
    load(engine, document())
    first, queries = statements_run(engine, lambda c: company_setup(c, "USPM"))
    assert first.tax_codes["US-HOTEL"].rate == Decimal("0.15") and queries == 5  # the token, then four reads

    again, queries = statements_run(engine, lambda c: company_setup(c, "USPM"))
    assert again == first and queries == 1  # the token only

    # When `dualwrite setup` loads a changed tax rate, the next read sees it
    load(engine, document(us_hotel_rate="0.16"))
    changed, queries = statements_run(engine, lambda c: company_setup(c, "USPM"))
    assert changed.tax_codes["US-HOTEL"].rate == Decimal("0.16") and queries == 5


def test_exchange_rates_are_read_once_per_revision(engine: Engine) -> None:
    load(engine, document())
    rates, _ = statements_run(engine, lambda c: rates_into(c, "USD", ["EUR"]))
    cached, queries = statements_run(engine, lambda c: rates_into(c, "USD", ["EUR"]))
    # The demo's EUR->USD rate valid at the end of 2026 is the one from 2026-11-01
    assert cached.rate("EUR", "USD", date(2026, 12, 31)) == rates.rate("EUR", "USD", date(2026, 12, 31)) == Decimal("1.0920")
    assert queries == 1

    load(engine, document(eur_usd="1.2345"))
    fresh, _ = statements_run(engine, lambda c: rates_into(c, "USD", ["EUR"]))
    assert fresh.rate("EUR", "USD", date(2026, 12, 31)) == Decimal("1.2345")


def test_a_company_unknown_until_a_setup_loads_it(engine: Engine) -> None:
    setup = document()
    only_us = setup.model_copy(update={"legal_entities": [e for e in setup.legal_entities if e.legal_entity == "USPM"]})
    load(engine, only_us)
    assert statements_run(engine, lambda c: company_setup(c, "DEMF"))[0] is None

    load(engine, setup)
    assert statements_run(engine, lambda c: company_setup(c, "DEMF"))[0].company.accounting_currency == "EUR"
