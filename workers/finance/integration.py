"""Import from staging and posting of the integration journal, as finance runs them.

Both run on a timer in every finance worker process and on demand
(``dualwrite finance import-from-staging``). Any number of them may run at once: each takes the
rows it works on with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; SQLite has one writer at a time),
so every staged actual is imported once and every journal posted once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from contracts.actuals import MSDYN_ACTUALPOSTINGS, ActualPostingsV1, ActualPostingV1, ActualsV1
from contracts.envelope import Side
from contracts.queues import table_map
from contracts.registry import Decoded
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.side_database import SideDatabase
from shared.unit_of_work import UnitOfWork
from workers.finance.companies import known_company
from workers.finance.domain.integration_journal import (
    Journal,
    JournalPosting,
    Period,
    StagedActual,
    build_journals,
    post_journal,
)
from workers.finance.store import integration as integration_store
from workers.finance.store import reference as reference_store

log = get_logger(__name__)


@dataclass(frozen=True)
class ImportPolicy:
    grouping: Period = Period.MONTH
    max_lines: int = 200
    #: Staged actuals taken in one transaction.
    batch_size: int = 5000


@dataclass
class IntegrationRun:
    lines_imported: int = 0
    journals_created: int = 0
    journals_posted: int = 0
    lines_posted: int = 0

    def __iadd__(self, other: "IntegrationRun") -> "IntegrationRun":
        self.lines_imported += other.lines_imported
        self.journals_created += other.journals_created
        self.journals_posted += other.journals_posted
        self.lines_posted += other.lines_posted
        return self


def stage_actuals(message: Decoded[ActualsV1], uow: UnitOfWork) -> None:
    """msdyn_actuals: actuals land in the staging table, once each (a company's that finance knows)."""
    legal_entity = message.envelope.legal_entity
    known_company(uow.connection, legal_entity)
    # Read from the validated rows as they are: a dump of each to build the actual cost more than staging it.
    actuals = [
        StagedActual(
            actual_id=row.actual_id,
            legal_entity=legal_entity,
            expense_id=row.expense_id,
            project_id=row.project_id,
            expense_category=row.expense_category,
            transaction_type=row.transaction_type,
            date=row.date,
            amount=row.amount,
            currency=row.currency,
            accounting_amount=row.accounting_amount,
            accounting_currency=row.accounting_currency,
            exchange_rate=row.exchange_rate,
        )
        for row in message.payload.rows
    ]
    integration_store.stage_actuals(uow.connection, actuals, datetime.now(UTC))


def new_journal_id(legal_entity: str, period: str) -> str:
    return f"{legal_entity}-{uuid.uuid4().hex[:10].upper()}"


def import_from_staging(database: SideDatabase, policy: ImportPolicy) -> IntegrationRun:
    """One batch of staged actuals into integration journals; returns what it did."""
    return _import_batch(database, policy)[0]


def _import_batch(database: SideDatabase, policy: ImportPolicy) -> tuple[IntegrationRun, list[Journal]]:
    """One batch of staged actuals into integration journals: what it did, and the journals made."""
    with database.engine.begin() as connection:
        actuals = integration_store.take_staged(connection, policy.batch_size)
        if not actuals:
            return IntegrationRun(), []
        setups = reference_store.company_setups(connection, {a.legal_entity for a in actuals})
        missing = sorted({a.legal_entity for a in actuals} - set(setups))
        if missing:
            # Left staged: they import once `dualwrite setup` has loaded the company.
            log.error("staged actuals of companies without finance set-up", legal_entities=missing)
            actuals = [a for a in actuals if a.legal_entity in setups]
        journals = build_journals(
            actuals, setups, grouping=policy.grouping, max_lines=policy.max_lines, new_journal_id=new_journal_id
        )
        integration_store.save_journals(connection, journals, datetime.now(UTC))
    return IntegrationRun(lines_imported=len(actuals), journals_created=len(journals)), journals


def post_integration_journals(
    database: SideDatabase,
    journal_ids: list[str] | None = None,
    *,
    limit: int = 50,
    relay: Outbox | None = None,
    imported: list[Journal] | None = None,
) -> list[JournalPosting]:
    """Post open journals: ledger, project subledger, and the results back to Dataverse (via the outbox).

    ``imported``: journals this process just imported, posted as built instead of read back (those
    still open; another poster may have taken some). With a relay the results are sent once
    committed; without one they wait in the outbox for the finance worker's.
    """
    with UnitOfWork(database, Side.FINANCE, relay_after_commit=relay is not None) as uow:
        if imported is None:
            journals = integration_store.take_open_journals(uow.connection, journal_ids, limit)
        else:
            still_open = integration_store.lock_open_journals(uow.connection, [j.journal_id for j in imported])
            journals = [journal for journal in imported if journal.journal_id in still_open]
        today = datetime.now(UTC).date()
        postings = [post_journal(journal, today) for journal in journals]
        integration_store.save_journal_postings(uow.connection, postings, datetime.now(UTC))
        for posting in postings:
            _send_results(posting, uow)
        uow.commit()
    if relay is not None:
        relay.send_committed(uow.outgoing)
    return postings


#: Journals posted in one transaction.
POSTING_BATCH = 50


def run_integration(database: SideDatabase, relay: Outbox | None, policy: ImportPolicy) -> IntegrationRun:
    """Import everything staged, post every open journal, then send the posting results."""
    total = IntegrationRun()
    while True:
        run, journals = _import_batch(database, policy)
        total += run
        for start in range(0, len(journals), POSTING_BATCH):
            postings = post_integration_journals(database, relay=relay, imported=journals[start : start + POSTING_BATCH])
            total.journals_posted += len(postings)
            total.lines_posted += sum(len(p.journal.lines) for p in postings)
        if run.lines_imported < policy.batch_size:
            break
    # Journals left open by an earlier run (a crash between import and posting) or another process.
    while postings := post_integration_journals(database, relay=relay):
        total.journals_posted += len(postings)
        total.lines_posted += sum(len(p.journal.lines) for p in postings)
    if total.lines_imported or total.journals_posted:
        log.info("import from staging", **vars(total))
    return total


def _send_results(posting: JournalPosting, uow: UnitOfWork) -> None:
    uow.emit(
        table_map(MSDYN_ACTUALPOSTINGS.name).outbound,
        MSDYN_ACTUALPOSTINGS.name,
        MSDYN_ACTUALPOSTINGS.latest,
        ActualPostingsV1(
            rows=[
                ActualPostingV1(
                    actual_id=r.actual_id,
                    voucher=r.voucher,
                    posted_on=r.posted_on,
                    accounting_amount=r.accounting_amount,
                    accounting_currency=r.accounting_currency,
                    exchange_rate=r.exchange_rate,
                )
                for r in posting.results
            ]
        ),
        correlation_id=f"integration-journal:{posting.journal.journal_id}",
        legal_entity=posting.journal.legal_entity,
    )
