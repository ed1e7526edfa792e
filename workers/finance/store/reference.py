"""Reference data: the set-up of each legal entity and the exchange rates."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from shared.database import upsert

from workers.finance.domain.reference import (
    CategoryAccounts,
    CompanySetup,
    ExchangeRate,
    ExchangeRates,
    LegalEntity,
    TaxCode,
    Worker,
)
from workers.finance.setup_document import SetupDocument
from workers.finance.tables import accounts, category_accounts, exchange_rates, legal_entities, tax_codes, workers


def company_setup(connection: Connection, legal_entity: str) -> CompanySetup | None:
    """The legal entity's set-up, or None when `dualwrite setup` never loaded it."""
    company = connection.execute(select(legal_entities).where(legal_entities.c.legal_entity == legal_entity)).mappings().first()
    if company is None:
        return None

    def rows(table):  # noqa: ANN001, ANN202
        return connection.execute(select(table).where(table.c.legal_entity == legal_entity)).mappings()

    return CompanySetup(
        company=LegalEntity(**company),
        tax_codes={row["tax_code"]: TaxCode(**row) for row in rows(tax_codes)},
        workers={row["worker"]: Worker(**row) for row in rows(workers)},
        category_accounts={row["expense_category"]: CategoryAccounts(**row) for row in rows(category_accounts)},
    )


def company_setups(connection: Connection, legal_entities_wanted: Iterable[str]) -> dict[str, CompanySetup]:
    found = {}
    for legal_entity in sorted(set(legal_entities_wanted)):
        setup = company_setup(connection, legal_entity)
        if setup is not None:
            found[legal_entity] = setup
    return found


def all_legal_entities(connection: Connection) -> list[str]:
    return list(connection.scalars(select(legal_entities.c.legal_entity).order_by(legal_entities.c.legal_entity)))


def rates_into(connection: Connection, to_currency: str, from_currencies: Iterable[str]) -> ExchangeRates:
    wanted = sorted(set(from_currencies) - {to_currency})
    if not wanted:
        return ExchangeRates()
    rows = connection.execute(
        select(exchange_rates).where(exchange_rates.c.to_currency == to_currency, exchange_rates.c.from_currency.in_(wanted))
    ).mappings()
    return ExchangeRates([ExchangeRate(**row) for row in rows])


def save_setup(connection: Connection, document: SetupDocument) -> dict[str, int]:
    """Insert or update everything the document holds; returns how many rows of each kind."""
    counts = {"legal_entities": 0, "accounts": 0, "tax_codes": 0, "workers": 0, "category_accounts": 0, "exchange_rates": 0}
    for entity in document.legal_entities:
        le = entity.legal_entity
        header = entity.model_dump(exclude={"accounts", "tax_codes", "workers", "category_accounts"})
        upsert(connection, legal_entities, [header], key=("legal_entity",))
        for table, items, key in (
            (accounts, entity.accounts, ("legal_entity", "account")),
            (tax_codes, entity.tax_codes, ("legal_entity", "tax_code")),
            (workers, entity.workers, ("legal_entity", "worker")),
            (category_accounts, entity.category_accounts, ("legal_entity", "expense_category")),
        ):
            upsert(connection, table, [{"legal_entity": le, **item.model_dump()} for item in items], key=key)
            counts[table.name] += len(items)
        counts["legal_entities"] += 1
    upsert(
        connection,
        exchange_rates,
        [rate.model_dump() for rate in document.exchange_rates],
        key=("from_currency", "to_currency", "valid_from"),
    )
    counts["exchange_rates"] = len(document.exchange_rates)
    return counts
