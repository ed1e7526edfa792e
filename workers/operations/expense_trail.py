"""An expense report followed past its own messages: through Dataverse, the integration journal and back.

The report's correlation id covers finance's life cycle, ``msdyn_expenses`` and the automated
approvals. From there each project line is followed by natural keys: its expense id
``<report>-<line>`` in Dataverse (expense record, system job, actuals), its actual ids in finance
(staging, integration journal lines, project transactions), and the journals that carry them, whose
posting results travel back to Dataverse as ``integration-journal:<journal id>`` messages.
An operator tool: it reads the finance and Dataverse databases side by side, which no worker does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, or_, select

from contracts.fields import TransactionType
from shared.side_database import SideDatabase
from workers.dataverse import tables as dv
from workers.finance import tables as fin
from workers.finance.expense_report_handlers import report_correlation
from workers.operations.hops import Hop, aware, dead_letter_hop, elapsed_ms


def journal_correlation(journal_id: str) -> str:
    """The correlation id of a journal's posting results (see workers/finance/integration.py)."""
    return f"integration-journal:{journal_id}"


@dataclass(frozen=True)
class ReportRef:
    legal_entity: str
    report_id: str

    @property
    def name(self) -> str:
        return f"{self.legal_entity}:{self.report_id}"

    @property
    def correlation_id(self) -> str:
        return report_correlation(self.legal_entity, self.report_id)


@dataclass
class ActualState:
    actual_id: str
    transaction_type: str
    accounting_amount: Decimal
    accounting_currency: str
    skip_sync: bool
    #: Finance staging: None (not arrived), "staged" or "imported".
    staging: str | None = None
    journal_id: str | None = None
    journal_status: str | None = None
    voucher: str | None = None
    project_transaction: str | None = None
    #: The posting result as Dataverse holds it: "unposted" or "posted".
    dataverse_posting: str = "unposted"


@dataclass
class LineState:
    line_number: int
    expense_id: str
    project_id: str | None
    expense_category: str
    amount: Decimal
    currency: str
    expense_record: bool = False
    job_id: str | None = None
    job_status: str | None = None
    job_error: str | None = None
    job_attempts: int | None = None
    actuals: list[ActualState] = field(default_factory=list)
    stage: str = ""
    done: bool = False


@dataclass
class ReportTrail:
    report: ReportRef
    worker: str
    status: str
    voucher: str | None
    lines: list[LineState]
    journal_ids: list[str]
    #: The sides' own work on the report: automated approvals, Import from staging, journal posting.
    steps: list[Hop]
    #: Finance's refusals of commands naming the report under another correlation id.
    refusals: list[Hop]

    @property
    def correlation_ids(self) -> list[str]:
        return [self.report.correlation_id, *(journal_correlation(j) for j in self.journal_ids)]


def find_reports(finance: SideDatabase, report_id: str, legal_entity: str | None = None) -> list[ReportRef]:
    table = fin.expense_reports
    query = select(table.c.legal_entity, table.c.report_id).where(table.c.report_id == report_id.upper())
    if legal_entity is not None:
        query = query.where(table.c.legal_entity == legal_entity.upper())
    with finance.engine.connect() as connection:
        return [ReportRef(*row) for row in connection.execute(query.order_by(table.c.legal_entity))]


def report_trail(finance: SideDatabase, dataverse: SideDatabase, report: ReportRef) -> ReportTrail:
    with finance.engine.connect() as f, dataverse.engine.connect() as d:
        header = f.execute(
            select(fin.expense_reports).where(
                fin.expense_reports.c.legal_entity == report.legal_entity, fin.expense_reports.c.report_id == report.report_id
            )
        ).mappings().one()
        lines = _lines(f, report)
        by_expense = {line.expense_id: line for line in lines}
        jobs = _dataverse_lines(d, report, by_expense)
        actuals = {a.actual_id: a for line in lines for a in line.actuals}
        journal_lines = _finance_actuals(f, report, actuals)
        journal_ids = sorted({row["journal_id"] for row in journal_lines})
        journals = _journals(f, journal_ids)
        for actual in actuals.values():
            actual.journal_status = journals[actual.journal_id]["status"] if actual.journal_id in journals else None
        steps = [_job_step(job) for job in jobs] + journal_steps(journals, journal_lines, _staged_at(f, actuals))
        refusals = _refusals_naming(f, finance, report)
    return ReportTrail(report, header["worker"], header["status"], header["voucher"], lines, journal_ids, steps, refusals)


def _lines(f: Connection, report: ReportRef) -> list[LineState]:
    table = fin.expense_lines
    rows = f.execute(
        select(table)
        .where(table.c.legal_entity == report.legal_entity, table.c.report_id == report.report_id)
        .order_by(table.c.line_number)
    ).mappings()
    return [
        LineState(
            line_number=row["line_number"],
            expense_id=f"{report.report_id}-{row['line_number']}",
            project_id=row["project_id"],
            expense_category=row["expense_category"],
            amount=row["amount"],
            currency=row["currency"],
        )
        for row in rows
    ]


def _dataverse_lines(d: Connection, report: ReportRef, lines: dict[str, LineState]) -> list[dict[str, Any]]:
    """Expense records, system jobs and actuals of the lines, as Dataverse holds them; returns the jobs."""
    ids = sorted(lines)
    scoped = (dv.expenses.c.legal_entity == report.legal_entity, dv.expenses.c.expense_id.in_(ids))
    for (expense_id,) in d.execute(select(dv.expenses.c.expense_id).where(*scoped)):
        lines[expense_id].expense_record = True
    jobs = [dict(row) for row in d.execute(select(dv.system_jobs).where(dv.system_jobs.c.expense_id.in_(ids))).mappings()]
    for job in jobs:
        line = lines[job["expense_id"]]
        line.job_id, line.job_status, line.job_error, line.job_attempts = job["job_id"], job["status"], job["error"], job["attempts"]
    actuals = dv.actuals.c
    for row in d.execute(
        select(dv.actuals).where(actuals.legal_entity == report.legal_entity, actuals.expense_id.in_(ids)).order_by(actuals.actual_id)
    ).mappings():
        lines[row["expense_id"]].actuals.append(
            ActualState(
                actual_id=row["actual_id"],
                transaction_type=TransactionType(row["transaction_type"]).name.lower(),
                accounting_amount=row["accounting_amount"],
                accounting_currency=row["accounting_currency"],
                skip_sync=row["skip_sync"],
                dataverse_posting=row["posting_status"],
            )
        )
    return jobs


def _finance_actuals(f: Connection, report: ReportRef, actuals: dict[str, ActualState]) -> list[dict[str, Any]]:
    """Staging, journal lines and project transactions of the actuals; returns their journal lines."""
    ids = sorted(actuals)
    staging = fin.actuals_staging.c
    for row in f.execute(select(staging.actual_id, staging.status, staging.journal_id).where(staging.actual_id.in_(ids))):
        actuals[row.actual_id].staging, actuals[row.actual_id].journal_id = row.status, row.journal_id
    lines = fin.integration_journal_lines.c
    journal_lines = [
        dict(row)
        for row in f.execute(
            select(lines.journal_id, lines.actual_id, lines.transaction_type, lines.accounting_amount, lines.accounting_currency)
            .where(lines.legal_entity == report.legal_entity, lines.actual_id.in_(ids))
        ).mappings()
    ]
    for row in journal_lines:
        actuals[row["actual_id"]].journal_id = row["journal_id"]
    tx = fin.project_transactions.c
    for row in f.execute(select(tx.actual_id, tx.kind, tx.voucher).where(tx.actual_id.in_(ids))):
        actuals[row.actual_id].project_transaction, actuals[row.actual_id].voucher = row.kind, row.voucher
    return journal_lines


def _journals(f: Connection, journal_ids: list[str]) -> dict[str, dict[str, Any]]:
    table = fin.integration_journals
    rows = f.execute(select(table).where(table.c.journal_id.in_(journal_ids))).mappings()
    return {row["journal_id"]: dict(row) for row in rows}


def _staged_at(f: Connection, actuals: dict[str, ActualState]) -> dict[str, datetime]:
    staging = fin.actuals_staging.c
    rows = f.execute(select(staging.actual_id, staging.staged_at).where(staging.actual_id.in_(sorted(actuals))))
    return {row.actual_id: aware(row.staged_at) for row in rows}


def journal_steps(
    journals: dict[str, dict[str, Any]], lines: Iterable[dict[str, Any]], staged_at: dict[str, datetime] | None = None
) -> list[Hop]:
    """Import from staging and the posting of each journal, counting the lines given (a report's, or all)."""
    per_journal: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        per_journal.setdefault(line["journal_id"], []).append(line)
    steps = []
    for journal_id, mine in sorted(per_journal.items()):
        journal = journals.get(journal_id)
        if journal is None:
            continue
        created = aware(journal["created_at"])
        first_staged = min((staged_at or {}).get(line["actual_id"], created) for line in mine)
        total = journal["line_count"]
        share = f"{len(mine)} of its {total} lines" if len(mine) != total else f"its {total} line{'s' if total > 1 else ''}"
        steps.append(_step(created, "finance", "Import from staging", len(mine), elapsed_ms(created, first_staged), "imported",
                           f"journal {journal_id} ({journal['period']}): {share}", journal_correlation(journal_id)))
        if journal["status"] == "posted":
            posted = aware(journal["posted_at"])
            cost = sum((line["accounting_amount"] for line in mine if line["transaction_type"] == int(TransactionType.COST)), Decimal(0))
            currency = mine[0]["accounting_currency"]
            steps.append(_step(posted, "finance", "integration journal posting", len(mine), elapsed_ms(posted, created), "posted",
                               f"journal {journal_id}, voucher {journal['voucher']}: project cost {cost} {currency} "
                               "moved from the expense integration account to project cost", journal_correlation(journal_id)))
    return steps


def _job_step(job: dict[str, Any]) -> Hop:
    at = aware(job["finished_at"] or job["started_at"] or job["created_at"])
    detail = f"job {job['job_id']} for expense {job['expense_id']}, attempts {job['attempts']}"
    if job["error"]:
        detail += f": {job['error']}"
    hop = _step(at, "dataverse", "automated approval", None, elapsed_ms(job["started_at"], job["created_at"]), job["status"], detail, job["correlation_id"])
    return replace(hop, ran_ms=elapsed_ms(job["finished_at"], job["started_at"]))


def _step(at: datetime, side: str, what: str, rows: int | None, waited: float | None, result: str, detail: str, correlation: str) -> Hop:
    return Hop(at=at, side=side, queue=what, contract=None, version=None, rows=rows, waited_ms=waited, ran_ms=None,
               result=result, detail=detail, correlation_id=correlation, kind="step")


def _refusals_naming(f: Connection, finance: SideDatabase, report: ReportRef) -> list[Hop]:
    """Dead letters of commands that name the report but travelled under another correlation id."""
    dead = finance.messaging.dead_letters
    rows = f.execute(
        select(dead).where(
            dead.c.body.contains(report.report_id, autoescape=True),
            or_(dead.c.correlation_id.is_(None), dead.c.correlation_id != report.correlation_id),
        )
    ).mappings()
    return [dead_letter_hop(finance.side, dict(row)) for row in rows if _names_report(row["body"], report)]


def _names_report(body: str, report: ReportRef) -> bool:
    try:
        envelope = json.loads(body)
        rows = envelope["payload"]["rows"]
        same_company = str(envelope.get("legal_entity") or "").upper() == report.legal_entity
        return same_company and any(str(row.get("report_id") or "").upper() == report.report_id for row in rows)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):  # a dead letter's body is anyone's
        return False
