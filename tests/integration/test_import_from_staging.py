"""Import from staging and journal posting, run by two finance processes at the same moment.

Given a thousand staged actuals of two companies over three months, when two importers run at
once (two threads with their own connections: on PostgreSQL they meet at ``FOR UPDATE SKIP
LOCKED``, on SQLite at its single writer), then every actual is imported exactly once, in
journals of one company and one month with at most 200 lines each, and every journal is posted
exactly once with balanced vouchers.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from contracts.fields import TransactionType
from shared.side import open_database
from workers.finance import tables as fin
from workers.finance.bootstrap import SPEC as FINANCE
from workers.finance.domain.integration_journal import Period, StagedActual
from workers.finance.integration import ImportPolicy, run_integration
from workers.finance.setup_document import read_setup_document
from workers.finance.store import integration as integration_store
from workers.finance.store.reference import save_setup

SETUP = Path(__file__).resolve().parents[2] / "workers" / "demo_data" / "setup.yaml"
ACTUALS = 1000


def staged_actuals() -> list[StagedActual]:
    """Alternating companies, dates over three months, a sales actual beside every third cost actual."""
    actuals = []
    for n in range(ACTUALS):
        legal_entity, currency = ("USPM", "USD") if n % 2 else ("DEMF", "EUR")
        kind = TransactionType.UNBILLED_SALES if n % 3 == 0 else TransactionType.COST
        amount = Decimal(10 + n % 97) + Decimal("0.25")
        actuals.append(
            StagedActual(
                actual_id=f"A-{n:05d}",
                legal_entity=legal_entity,
                expense_id=f"R-{n // 10:04d}-{n % 10 + 1}",
                project_id="PRJ-1",
                expense_category="HOTEL",
                transaction_type=kind,
                date=dt.date(2026, 9 + n % 3, 1 + n % 28),
                amount=amount,
                currency=currency,
                accounting_amount=amount,
                accounting_currency=currency,
                exchange_rate=Decimal(1),
            )
        )
    return actuals


def test_two_importers_at_once_import_and_post_each_actual_once(backend) -> None:
    # Given a finance database with the demo set-up and a thousand staged actuals
    database = open_database(FINANCE, backend.settings)
    database.create_tables()
    try:
        with database.engine.begin() as connection:
            save_setup(connection, read_setup_document(SETUP))
            integration_store.stage_actuals(connection, staged_actuals(), dt.datetime.now(dt.UTC))
        policy = ImportPolicy(grouping=Period.MONTH, max_lines=200, batch_size=150)

        # When two importers run at the same moment, each until nothing is left
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def importer() -> None:
            try:
                start.wait(timeout=10)
                while run_integration(database, None, policy).lines_imported:
                    pass
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=importer) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures

        with database.engine.connect() as connection:
            lines = connection.execute(select(fin.integration_journal_lines)).mappings().all()
            journals = connection.execute(select(fin.integration_journals)).mappings().all()
            staged_left = connection.scalar(select(func.count()).select_from(fin.actuals_staging).where(fin.actuals_staging.c.status != "imported"))
            transactions = Counter(connection.scalars(select(fin.project_transactions.c.actual_id)))
            unbalanced = connection.execute(
                select(fin.ledger_entries.c.voucher).group_by(fin.ledger_entries.c.voucher).having(func.sum(fin.ledger_entries.c.amount) != 0)
            ).all()
            cost_ledger_lines = connection.scalar(select(func.count()).select_from(fin.ledger_entries))
            results_sent = connection.scalar(
                select(func.count()).select_from(fin.messaging.outbox).where(fin.messaging.outbox.c.contract == "msdyn_actualpostings")
            )
            integration_balance = {
                le: connection.scalar(
                    select(func.sum(fin.ledger_entries.c.amount)).where(
                        fin.ledger_entries.c.legal_entity == le, fin.ledger_entries.c.account == "189900"
                    )
                )
                for le in ("USPM", "DEMF")
            }

        # Then every actual is on exactly one journal line, and nothing is left staged
        assert staged_left == 0
        assert len(lines) == ACTUALS
        assert sorted(Counter(line["actual_id"] for line in lines).values()) == [1] * ACTUALS
        # ... in journals of one company and one month, 200 lines at most, all posted once
        for journal in journals:
            members = [line for line in lines if line["journal_id"] == journal["journal_id"]]
            assert len(members) == journal["line_count"] <= 200
            assert {line["legal_entity"] for line in members} == {journal["legal_entity"]}
            assert {f"{line['date']:%Y-%m}" for line in members} == {journal["period"]}
            assert journal["status"] == "posted" and journal["voucher"] == f"PIJ-{journal['journal_id']}"
        assert {(j["legal_entity"], j["period"]) for j in journals} == {
            (le, f"2026-{m:02d}") for le in ("USPM", "DEMF") for m in (9, 10, 11)
        }
        # ... with one project transaction per actual, balanced vouchers, one result message per journal
        assert len(transactions) == ACTUALS and set(transactions.values()) == {1}
        assert unbalanced == []
        cost_actuals = [a for a in staged_actuals() if a.transaction_type is TransactionType.COST]
        assert cost_ledger_lines == 2 * len(cost_actuals)
        assert results_sent == len(journals)
        # No expense was posted here, so the integration account holds minus the cost moved out of it.
        for le in ("USPM", "DEMF"):
            moved = sum(a.accounting_amount for a in cost_actuals if a.legal_entity == le)
            assert Decimal(integration_balance[le]) == -moved
    finally:
        database.dispose()
