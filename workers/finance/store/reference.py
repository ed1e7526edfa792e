"""Reference data: the set-up of each legal entity and the exchange rates."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime

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
from workers.finance.tables import (
    accounts,
    category_accounts,
    exchange_rates,
    legal_entities,
    reference_revision,
    tax_codes,
    workers,
)


class _Revision:
    """What one revision of the reference data held, as read so far: set-ups and rates."""

    def __init__(self) -> None:
        self.setups: dict[str, CompanySetup | None] = {}
        self.rates: dict[str, ExchangeRates] = {}


#: Reference data read, by revision token (the newest few); a `dualwrite setup` writes a new token.
_revisions: OrderedDict[str, _Revision] = OrderedDict()
_revisions_lock = threading.Lock()
_REVISIONS_KEPT = 8

_TOKEN = select(reference_revision.c.token).where(reference_revision.c.id == 1)


def _revision(connection: Connection) -> _Revision | None:
    """The cache of the revision this transaction sees; None before any `dualwrite setup` wrote one."""
    token = connection.scalar(_TOKEN)
    if token is None:
        return None
    with _revisions_lock:
        revision = _revisions.get(token)
        if revision is None:
            revision = _revisions[token] = _Revision()
            while len(_revisions) > _REVISIONS_KEPT:
                _revisions.popitem(last=False)
        else:
            _revisions.move_to_end(token)
        return revision


def company_setup(connection: Connection, legal_entity: str) -> CompanySetup | None:
    """The legal entity's set-up, or None when `dualwrite setup` never loaded it.

    Read once per revision of the reference data (a set-up is immutable; the revision's token
    changes with every `dualwrite setup`), so a call costs one small query (the token) instead of four.
    """
    revision = _revision(connection)
    if revision is not None and legal_entity in revision.setups:
        return revision.setups[legal_entity]
    setup = _read_company_setup(connection, legal_entity)
    if revision is not None:
        revision.setups[legal_entity] = setup
    return setup


def _read_company_setup(connection: Connection, legal_entity: str) -> CompanySetup | None:
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
    """Exchange rates into ``to_currency`` from each of ``from_currencies`` (every one, once cached)."""
    wanted = sorted(set(from_currencies) - {to_currency})
    if not wanted:
        return ExchangeRates()
    revision = _revision(connection)
    if revision is None:
        return _read_rates(connection, to_currency, wanted)
    rates = revision.rates.get(to_currency)
    if rates is None:
        rates = revision.rates[to_currency] = _read_rates(connection, to_currency, None)
    return rates


def _read_rates(connection: Connection, to_currency: str, from_currencies: list[str] | None) -> ExchangeRates:
    query = select(exchange_rates).where(exchange_rates.c.to_currency == to_currency)
    if from_currencies is not None:
        query = query.where(exchange_rates.c.from_currency.in_(from_currencies))
    return ExchangeRates([ExchangeRate(**row) for row in connection.execute(query).mappings()])


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
    # A new revision: workers read the reference data afresh (company_setup, rates_into).
    upsert(connection, reference_revision, [{"id": 1, "token": uuid.uuid4().hex, "changed_at": datetime.now(UTC)}], key=("id",))
    return counts
