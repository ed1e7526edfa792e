"""The end-to-end check of a soak: every document, hop by hop, by business key.

Each hop of the expense flow is compared with what the generated reports must produce:

======================  =========================================  ===================================
hop                     business key                               expected
======================  =========================================  ===================================
posted in finance       report                                     every report posted
expense records         expense (``<report>-<line>``), Dataverse   one per line
cost actuals            expense, Dataverse                         one per line
sales actuals           expense, Dataverse                         one per line on a billable project
journal lines           (expense, transaction type), finance       one per actual
project transactions    (expense, kind), finance                   one per actual (cost, unbilled revenue)
======================  =========================================  ===================================

A key expected and absent is **missing**; present more than once, **doubled**. An expense line
counts as **lost** when any hop misses it (or its report is not posted) and as **doubled** when any
hop holds it twice. The balances are checked four ways, exactly as ``dualwrite reconcile`` does
(integration account at 0, project cost = cost actuals, every voucher balanced, the counts equal)
for every legal entity, and the dead letters of each side are listed with their cause.

:func:`check_hops` is pure (rows in, verdict out) so it can be tested on made-up rows;
:func:`collect` reads the rows from the three databases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from contracts.fields import TransactionType
from shared.side_database import SideDatabase
from workers.bench.load import BenchReport
from workers.dataverse import tables as dv
from workers.finance import tables as fin

HOPS = ("posted in finance", "expense records", "cost actuals", "sales actuals", "journal lines", "project transactions")
COST, SALES = int(TransactionType.COST), int(TransactionType.UNBILLED_SALES)
KIND_OF_TYPE = {COST: "cost", SALES: "unbilled_revenue"}


@dataclass
class HopCheck:
    hop: str
    expected: int
    found: int
    #: Keys expected and absent, keys present more than once (with how many extra), keys not expected.
    missing: list[Any] = field(default_factory=list)
    doubled: dict[Any, int] = field(default_factory=dict)
    unexpected: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.doubled and not self.unexpected

    def as_json(self, named: int = 20) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "expected": self.expected,
            "found": self.found,
            "missing": len(self.missing),
            "doubled": sum(self.doubled.values()),
            "unexpected": len(self.unexpected),
            "missing_keys": [str(k) for k in self.missing[:named]],
            "doubled_keys": [str(k) for k in list(self.doubled)[:named]],
            "unexpected_keys": [str(k) for k in self.unexpected[:named]],
            "ok": self.ok,
        }


def expected_keys(reports: Iterable[BenchReport], billable_projects: set[str]) -> dict[str, set[Any]]:
    """What each hop must hold, from the generated reports."""
    keys: dict[str, set[Any]] = {hop: set() for hop in HOPS}
    for report in reports:
        keys["posted in finance"].add(report.report_id)
        for line in report.lines:
            expense = f"{report.report_id}-{line['line_number']}"
            keys["expense records"].add(expense)
            keys["cost actuals"].add(expense)
            keys["journal lines"].add((expense, COST))
            keys["project transactions"].add((expense, "cost"))
            if line["project_id"] in billable_projects:
                keys["sales actuals"].add(expense)
                keys["journal lines"].add((expense, SALES))
                keys["project transactions"].add((expense, "unbilled_revenue"))
    return keys


def check_hop(hop: str, expected: set[Any], found: Iterable[Any]) -> HopCheck:
    counts = Counter(found)
    return HopCheck(
        hop=hop,
        expected=len(expected),
        found=sum(counts.values()),
        missing=sorted((k for k in expected if k not in counts), key=str),
        doubled={k: n - 1 for k, n in sorted(counts.items(), key=lambda kv: str(kv[0])) if n > 1},
        unexpected=sorted((k for k in counts if k not in expected), key=str),
    )


def check_hops(expected: dict[str, set[Any]], found: dict[str, Iterable[Any]]) -> list[HopCheck]:
    """Every hop of ``HOPS``: expected keys against the keys found (a key listed twice is doubled)."""
    return [check_hop(hop, expected.get(hop, set()), found.get(hop, ())) for hop in HOPS]


def expense_of(key: Any) -> str:
    """The expense id a hop's key is about (a report id for the posting hop)."""
    return key[0] if isinstance(key, tuple) else key


def line_verdicts(reports: Iterable[BenchReport], hops: list[HopCheck]) -> tuple[set[str], set[str]]:
    """(lost expense lines, doubled expense lines): lost when any hop misses it or its report was not
    posted, doubled when any hop holds it (or its report's posting) more than once."""
    lines_of = {r.report_id: [f"{r.report_id}-{line['line_number']}" for line in r.lines] for r in reports}
    lost: set[str] = set()
    doubled: set[str] = set()
    for hop in hops:
        for key in hop.missing:
            item = expense_of(key)
            lost.update(lines_of.get(item, [item]))
        for key in hop.doubled:
            item = expense_of(key)
            doubled.update(lines_of.get(item, [item]))
    return lost, doubled


@dataclass
class DeadLetter:
    side: str
    queue: str
    contract: str | None
    error_type: str
    error: str
    count: int

    def as_json(self) -> dict[str, Any]:
        return vars(self).copy()


def collect(databases: dict[str, SideDatabase], prefix: str) -> dict[str, list[Any]]:
    """The keys each hop holds for the reports whose ids start with ``prefix``."""
    finance, dataverse = databases["finance"].engine, databases["dataverse"].engine
    reports, expenses, actuals = fin.expense_reports.c, dv.expenses.c, dv.actuals.c
    journal, transactions = fin.integration_journal_lines.c, fin.project_transactions.c
    found: dict[str, list[Any]] = {}
    with finance.connect() as f:
        found["posted in finance"] = list(
            f.scalars(select(reports.report_id).where(reports.status == "posted", reports.report_id.startswith(prefix, autoescape=True)))
        )
        found["journal lines"] = [
            (row.expense_id, row.transaction_type)
            for row in f.execute(select(journal.expense_id, journal.transaction_type).where(journal.expense_id.startswith(prefix, autoescape=True)))
        ]
        found["project transactions"] = [
            (row.expense_id, row.kind)
            for row in f.execute(
                select(journal.expense_id, transactions.kind)
                .select_from(fin.project_transactions.join(fin.integration_journal_lines, journal.actual_id == transactions.actual_id))
                .where(journal.expense_id.startswith(prefix, autoescape=True))
            )
        ]
    with dataverse.connect() as d:
        # By business key (report, line), not by the table's primary key: a second record of the
        # same line under another id would be a double the primary key cannot stop.
        found["expense records"] = [
            f"{row.report_id}-{row.line_number}"
            for row in d.execute(select(expenses.report_id, expenses.line_number).where(expenses.report_id.startswith(prefix, autoescape=True)))
        ]
        typed = [
            (row.expense_id, row.transaction_type)
            for row in d.execute(select(actuals.expense_id, actuals.transaction_type).where(actuals.expense_id.startswith(prefix, autoescape=True)))
        ]
        found["cost actuals"] = [expense for expense, kind in typed if kind == COST]
        found["sales actuals"] = [expense for expense, kind in typed if kind == SALES]
    return found


def dead_letters(databases: dict[str, SideDatabase]) -> list[DeadLetter]:
    """Every side's dead letters still dead (no operator outcome), grouped by queue, contract and cause."""
    letters = []
    for side, database in databases.items():
        table = database.messaging.dead_letters
        where = [table.c.outcome.is_(None)] if "outcome" in table.c else []
        with database.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.queue_name, table.c.contract, table.c.error_type, func.min(table.c.error), func.count())
                .where(*where)
                .group_by(table.c.queue_name, table.c.contract, table.c.error_type)
            ).all()
        letters += [DeadLetter(side, row[0], row[1], row[2], (row[3] or "")[:300], int(row[4])) for row in rows]
    return letters
