"""``dualwrite trace``: every hop of one business document across the three workers, and where it is now.

An id is read, in this order, as an expense report (``R-US-001``, ``USPM:R-US-001`` or its
correlation id ``expense-report:USPM:R-US-001``), a correlation id any side has seen, or a message
id any side has seen (which stands for its whole document). An expense report is followed past its
own correlation id, through Dataverse and the integration journal (see ``expense_trail``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sqlalchemy import select

from shared.errors import DualWriteError
from shared.side_database import SideDatabase
from workers.finance import tables as fin
from workers.finance.expense_report_handlers import report_correlation
from workers.operations.expense_trail import (
    ReportRef,
    ReportTrail,
    find_reports,
    journal_correlation,
    journal_steps,
    report_trail,
)
from workers.operations.hops import Hop, in_time_order, message_hops
from workers.operations.progress import describe_lines, message_summary, report_summary

_REPORT_CORRELATION = re.compile(r"^expense-report:(?P<le>[^:]+):(?P<report>.+)$")
_COMPANY_AND_REPORT = re.compile(r"^(?P<le>[A-Za-z0-9]{1,8}):(?P<report>[A-Za-z0-9][A-Za-z0-9_.-]{0,29})$")
_JOURNAL_CORRELATION = re.compile(r"^integration-journal:(?P<journal>.+)$")


class TraceError(DualWriteError):
    """Raised when an id cannot be traced."""


class UnknownDocument(TraceError):
    """Raised when no side knows the id as an expense report, a correlation id or a message id."""


class AmbiguousReport(TraceError):
    """Raised when a report id exists in several legal entities and the id names none of them."""


@dataclass(frozen=True)
class SideDatabases:
    finance: SideDatabase
    dataverse: SideDatabase
    bridge: SideDatabase

    def all(self) -> list[SideDatabase]:
        return [self.finance, self.dataverse, self.bridge]


@dataclass
class Trace:
    query: str
    #: How the id was recognised: "expense report", "correlation id" or "message id".
    found_as: str
    subject: str
    correlation_ids: list[str]
    hops: list[Hop]
    where: list[str]
    report: ReportTrail | None = None
    message_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "query": self.query,
            "found_as": self.found_as,
            "subject": self.subject,
            "message_id": self.message_id,
            "correlation_ids": self.correlation_ids,
            "where": self.where,
            "hops": [hop.as_json() for hop in self.hops],
        }
        if self.report is not None:
            trail = self.report
            document["expense_report"] = {
                "legal_entity": trail.report.legal_entity,
                "report_id": trail.report.report_id,
                "worker": trail.worker,
                "status": trail.status,
                "voucher": trail.voucher,
                "journals": trail.journal_ids,
                "lines": [asdict(line) for line in trail.lines],
            }
        return document


def trace(databases: SideDatabases, query: str) -> Trace:
    query = query.strip()
    report = _as_report(databases, query)
    if report is not None:
        return trace_report(databases, report, query)
    for correlation in _correlations_meant(query):
        if _known_correlation(databases, correlation):
            return trace_correlation(databases, correlation, query)
    correlation = _correlation_of_message(databases, query)
    if correlation is not None:
        found = trace(databases, correlation)
        return replace(found, query=query, found_as="message id", message_id=query)
    raise UnknownDocument(
        f"no expense report, correlation id or message id {query!r} in the finance, Dataverse or bridge database"
    )


def trace_report(databases: SideDatabases, report: ReportRef, query: str) -> Trace:
    trail = report_trail(databases.finance, databases.dataverse, report)
    describe_lines(trail)
    hops = _with_journal_shares(message_hops(databases.all(), trail.correlation_ids), trail)
    hops = in_time_order([*hops, *trail.steps, *trail.refusals])
    subject = f"expense report {report.name} of {trail.worker}: {trail.status}" + (f", voucher {trail.voucher}" if trail.voucher else "")
    return Trace(query, "expense report", subject, trail.correlation_ids, hops, report_summary(trail, hops), report=trail)


def trace_correlation(databases: SideDatabases, correlation_id: str, query: str) -> Trace:
    hops = message_hops(databases.all(), [correlation_id])
    journal = _JOURNAL_CORRELATION.match(correlation_id)
    if journal:
        hops = in_time_order([*hops, *_whole_journal_steps(databases.finance, journal["journal"])])
    return Trace(query, "correlation id", f"correlation id {correlation_id}", [correlation_id], hops, message_summary(hops))


def _as_report(databases: SideDatabases, query: str) -> ReportRef | None:
    """The expense report the id names, if it names one finance holds."""
    named = _REPORT_CORRELATION.match(query) or _COMPANY_AND_REPORT.match(query)
    if named:
        found = find_reports(databases.finance, named["report"], named["le"])
        return found[0] if found else None
    found = find_reports(databases.finance, query)
    if len(found) > 1:
        raise AmbiguousReport(
            f"report {query} exists in {len(found)} legal entities: name one, as "
            + " or ".join(report.name for report in found)
        )
    return found[0] if found else None


def _correlations_meant(query: str) -> list[str]:
    """The id itself, and for ``USPM:R-US-9`` that finance never created, the report's correlation id."""
    named = _COMPANY_AND_REPORT.match(query)
    return [query, report_correlation(named["le"].upper(), named["report"].upper())] if named else [query]


def _known_correlation(databases: SideDatabases, correlation_id: str) -> bool:
    return _correlation_where(databases, "correlation_id", correlation_id) is not None


def _correlation_of_message(databases: SideDatabases, message_id: str) -> str | None:
    """The document of a message id: a part's own id, or else the first document a message carried."""
    found = _correlation_where(databases, "message_id", message_id)
    if found is not None:
        return found
    for database in databases.all():
        inbox = database.messaging.inbox
        with database.engine.connect() as connection:
            carried = connection.scalar(
                select(inbox.c.correlation_id).where(inbox.c.carried_by == message_id).order_by(inbox.c.started_at).limit(1)
            )
        if carried is not None:
            return carried
    return None


def _correlation_where(databases: SideDatabases, column: str, value: str) -> str | None:
    """The correlation id of the first inbox, outbox or dead-letter row whose ``column`` is ``value``."""
    for database in databases.all():
        messaging = database.messaging
        with database.engine.connect() as connection:
            for table in (messaging.inbox, messaging.outbox, messaging.dead_letters):
                found = connection.scalar(
                    select(table.c.correlation_id).where(table.c[column] == value, table.c.correlation_id.is_not(None)).limit(1)
                )
                if found is not None:
                    return found
    return None


def _whole_journal_steps(finance: SideDatabase, journal_id: str) -> list[Hop]:
    journals, lines = fin.integration_journals, fin.integration_journal_lines
    with finance.engine.connect() as connection:
        headers = {row["journal_id"]: dict(row) for row in connection.execute(select(journals).where(journals.c.journal_id == journal_id)).mappings()}
        rows = [dict(row) for row in connection.execute(select(lines).where(lines.c.journal_id == journal_id)).mappings()]
    return journal_steps(headers, rows)


def _with_journal_shares(hops: list[Hop], trail: ReportTrail) -> list[Hop]:
    """Posting results carry a whole journal; say how many of their rows are the report's."""
    mine: dict[str, int] = {}
    for line in trail.lines:
        for actual in line.actuals:
            if actual.journal_id:
                mine[journal_correlation(actual.journal_id)] = mine.get(journal_correlation(actual.journal_id), 0) + 1
    return [
        replace(hop, detail=f"{mine[hop.correlation_id]} of its {hop.rows} rows are {trail.report.report_id}'s")
        if hop.correlation_id in mine and hop.rows and mine[hop.correlation_id] < hop.rows and hop.detail is None
        else hop
        for hop in hops
    ]

