"""Expense reports and their lines, projects as finance knows them, and what posting writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select

from contracts.fields import ProjectStatus
from shared.case_variants import held_in_another_case
from shared.database import as_row, insert_rows, update_rows, upsert
from shared.sql_lists import ValueList, one_of
from workers.finance.domain.expense_reports import ExpenseLine, ExpenseReport, FinanceProject, ReportStatus
from workers.finance.domain.posting import ExpensePosting
from workers.finance.tables import (
    expense_categories,
    expense_lines,
    expense_reports,
    ledger_entries,
    projects,
    tax_transactions,
    vendor_transactions,
)


_REPORT_KEY = ("legal_entity", "report_id")
_LINE_KEY = ("legal_entity", "report_id", "line_number")


def save_projects(connection: Connection, rows: list[FinanceProject]) -> None:
    upsert(connection, projects, [as_row(project) for project in rows], key=("project_id",))


def projects_by_id(connection: Connection, project_ids: Iterable[str]) -> dict[str, FinanceProject]:
    wanted = sorted({p for p in project_ids if p is not None})
    if not wanted:
        return {}
    rows = connection.execute(select(projects).where(projects.c.project_id.in_(wanted))).mappings()
    return {row["project_id"]: FinanceProject(**{**row, "status": ProjectStatus(row["status"])}) for row in rows}


def company_categories(connection: Connection, legal_entity: str) -> frozenset[str]:
    return frozenset(
        connection.scalars(select(expense_categories.c.expense_category).where(expense_categories.c.legal_entity == legal_entity))
    )


#: ExpenseLine's fields, in order: a line read is built from its row's values as they come.
_LINE_FIELDS = tuple(field.name for field in fields(ExpenseLine))


# Built once (one_of: the ids as one parameter, see shared/sql_lists.py); FOR UPDATE is PostgreSQL's.
_REPORTS = (
    select(expense_reports)
    .where(
        expense_reports.c.legal_entity == bindparam("b_legal_entity"),
        one_of(expense_reports.c.report_id, bindparam("b_report_ids", type_=ValueList())),
    )
    .order_by(expense_reports.c.report_id)
)
_REPORTS_LOCKED = _REPORTS.with_for_update()
_REPORT_LINES = (
    select(*(expense_lines.c[name] for name in _LINE_FIELDS))
    .where(
        expense_lines.c.legal_entity == bindparam("b_legal_entity"),
        one_of(expense_lines.c.report_id, bindparam("b_report_ids", type_=ValueList())),
    )
    .order_by(expense_lines.c.report_id, expense_lines.c.line_number)
)


def reports_in_another_case(connection: Connection, legal_entity: str, report_ids: Iterable[str]) -> dict[str, str]:
    """Those of ``report_ids`` that ``legal_entity`` holds only in another case, with the id as held."""
    return held_in_another_case(
        connection, expense_reports.c.report_id, report_ids, expense_reports.c.legal_entity == legal_entity
    )


_REPORTS_ANY_COMPANY = (
    select(expense_reports.c.legal_entity, expense_reports.c.report_id)
    .where(one_of(func.lower(expense_reports.c.report_id), bindparam("b_lowered_ids", type_=ValueList())))
    .order_by(expense_reports.c.legal_entity, expense_reports.c.report_id)
)


def reports_held_elsewhere(connection: Connection, legal_entity: str, report_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """For each of ``report_ids`` that ``legal_entity`` does not hold as it is: a report it names in
    another company, or in another case, as (company, report id); one statement for the batch."""
    wanted = sorted(set(report_ids))
    if not wanted:
        return {}
    held: dict[str, list[tuple[str, str]]] = {}
    for row in connection.execute(_REPORTS_ANY_COMPANY, {"b_lowered_ids": sorted({r.lower() for r in wanted})}):
        held.setdefault(row.report_id.lower(), []).append((row.legal_entity, row.report_id))
    found: dict[str, tuple[str, str]] = {}
    for report_id in wanted:
        candidates = held.get(report_id.lower(), [])
        if (legal_entity, report_id) in candidates or not candidates:
            continue
        # The closest first: the same id in another company, then this company's in another case
        candidates.sort(key=lambda entry: (entry[1] != report_id, entry[0] != legal_entity))
        found[report_id] = candidates[0]
    return found


def reports_by_id(
    connection: Connection, legal_entity: str, report_ids: Iterable[str], *, for_update: bool = False
) -> dict[str, ExpenseReport]:
    """The reports with their lines. ``for_update`` locks them until the transaction ends (PostgreSQL):
    two approvals of one report applied at once then run one after the other, and neither's
    lines are lost (SQLite has a single writer anyway)."""
    parameters = {"b_legal_entity": legal_entity, "b_report_ids": sorted(set(report_ids))}
    headers = connection.execute(_REPORTS_LOCKED if for_update else _REPORTS, parameters).mappings().all()
    lines: dict[str, list[ExpenseLine]] = {}
    for row in connection.execute(_REPORT_LINES, parameters):
        lines.setdefault(row.report_id, []).append(ExpenseLine(*row))
    return {
        header["report_id"]: ExpenseReport(
            legal_entity=legal_entity,
            report_id=header["report_id"],
            worker=header["worker"],
            status=ReportStatus(header["status"]),
            lines=tuple(lines.get(header["report_id"], ())),
        )
        for header in headers
    }


def save_new_reports(connection: Connection, reports: list[ExpenseReport]) -> None:
    """Write drafts; a redrafted report's lines are replaced whole."""
    if not reports:
        return
    upsert(
        connection,
        expense_reports,
        [{"legal_entity": r.legal_entity, "report_id": r.report_id, "worker": r.worker, "status": r.status.value} for r in reports],
        key=("legal_entity", "report_id"),
    )
    connection.execute(
        delete(expense_lines).where(
            or_(*(and_(expense_lines.c.legal_entity == r.legal_entity, expense_lines.c.report_id == r.report_id) for r in reports))
        )
    )
    insert_rows(connection, expense_lines, [as_row(line) for r in reports for line in r.lines])


def save_statuses(connection: Connection, reports: list[ExpenseReport]) -> None:
    update_rows(
        connection,
        expense_reports,
        [{"legal_entity": r.legal_entity, "report_id": r.report_id, "status": r.status.value} for r in reports],
        key=_REPORT_KEY,
    )


def save_approvals(connection: Connection, reports: list[ExpenseReport]) -> None:
    save_statuses(connection, reports)
    update_rows(
        connection,
        expense_lines,
        [
            {"legal_entity": line.legal_entity, "report_id": line.report_id, "line_number": line.line_number,
             "approved_by": line.approved_by}
            for report in reports
            for line in report.lines
            if line.approved_by is not None
        ],
        key=_LINE_KEY,
    )


def save_postings(connection: Connection, postings: list[ExpensePosting]) -> None:
    """Everything posting writes, a statement per table for the whole batch of reports."""
    if not postings:
        return
    update_rows(
        connection,
        expense_reports,
        [
            {"legal_entity": p.report.legal_entity, "report_id": p.report.report_id,
             "status": ReportStatus.POSTED.value, "voucher": p.voucher, "posted_on": p.date}
            for p in postings
        ],
        key=_REPORT_KEY,
    )
    update_rows(
        connection,
        expense_lines,
        [
            {
                "legal_entity": line.line.legal_entity, "report_id": line.line.report_id,
                "line_number": line.line.line_number, "exchange_rate": line.exchange_rate,
                "tax_amount": line.tax_amount, "recoverable_tax": line.recoverable_tax,
                "project_cost": line.project_cost, "amount_accounting": line.amount_accounting,
                "recoverable_tax_accounting": line.recoverable_tax_accounting,
                "project_cost_accounting": line.project_cost_accounting,
            }
            for posting in postings
            for line in posting.lines
        ],
        key=_LINE_KEY,
    )
    insert_rows(connection, ledger_entries, [as_row(line) for p in postings for line in p.ledger])
    insert_rows(connection, tax_transactions, [as_row(entry) for p in postings for entry in p.tax])
    insert_rows(connection, vendor_transactions, [as_row(p.vendor) for p in postings])