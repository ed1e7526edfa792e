"""Finance handlers of the expense report life cycle: create, submit, approve, post."""

from __future__ import annotations

from contracts.expense_reports import (
    ApproveExpenseReportsV1,
    CreateExpenseReportsV1,
    PostExpenseReportsV1,
    SubmitExpenseReportsV1,
)
from contracts.expenses import MSDYN_EXPENSES, ExpensesV1, ExpenseV1
from contracts.queues import table_map
from contracts.registry import Decoded
from shared.case_variants import CaseVariants, refuse_case_variants
from shared.errors import NotYet, Refusals
from shared.unit_of_work import UnitOfWork
from workers.finance.companies import known_company
from workers.finance.domain.expense_reports import (
    ExpenseLine,
    ExpenseReport,
    ReportStatus,
    approve_report,
    create_report,
    refuse_report_of_another_company,
    submit_report,
)
from workers.finance.domain.posting import ExpensePosting, post_expense_report
from workers.finance.domain.reference import CompanySetup
from workers.finance.store import reference as reference_store
from workers.finance.store import reports as report_store
from workers.finance.store.projects import projects_in_another_case


def report_correlation(legal_entity: str, report_id: str) -> str:
    """The correlation id of everything that happens to one expense report."""
    return f"expense-report:{legal_entity}:{report_id}"


def _setup(uow: UnitOfWork, legal_entity: str) -> CompanySetup:
    """The company's set-up; a company finance was never set up for is refused for good."""
    return known_company(uow.connection, legal_entity)


def _held_elsewhere(uow: UnitOfWork, legal_entity: str, ids: list[str], found: dict[str, ExpenseReport]) -> dict[str, tuple[str, str]]:
    """For the ids this company does not hold: the report they name in another company or case, if any.

    Read only when an id is missing (one statement), so the common batch pays nothing for it.
    """
    missing = [report_id for report_id in ids if report_id not in found]
    return report_store.reports_held_elsewhere(uow.connection, legal_entity, missing) if missing else {}


def create_expense_reports(message: Decoded[CreateExpenseReportsV1], uow: UnitOfWork) -> None:
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    setup = _setup(uow, legal_entity)
    ids = [row.report_id for row in rows]
    variants = CaseVariants(
        "create_expense_reports", "report", ids,
        lambda connection: report_store.reports_in_another_case(connection, legal_entity, ids), f" of company {legal_entity}",
    )
    variants.refuse_held(uow.connection)
    existing = report_store.reports_by_id(uow.connection, legal_entity, (row.report_id for row in rows), for_update=True)
    projects = report_store.projects_by_id(uow.connection, (line.project_id for row in rows for line in row.lines))
    unknown = [line.project_id for row in rows for line in row.lines if line.project_id and line.project_id not in projects]
    if unknown:  # a project named in another case will never arrive: refused now rather than waited for
        refuse_case_variants("create_expense_reports", "project", unknown, projects_in_another_case(uow.connection, unknown))
    categories = report_store.company_categories(uow.connection, legal_entity)
    created, refusals = [], Refusals("create_expense_reports")
    for row in rows:
        report = ExpenseReport(
            legal_entity=legal_entity,
            report_id=row.report_id,
            worker=row.worker,
            status=ReportStatus.DRAFT,
            lines=tuple(ExpenseLine(legal_entity=legal_entity, report_id=row.report_id, **line.model_dump()) for line in row.lines),
        )
        with refusals.row():
            created.append(create_report(report, existing=existing.get(row.report_id), setup=setup, categories=categories, projects=projects))
    refusals.raise_if_any()
    with variants.guard(uow.connection):
        report_store.save_new_reports(uow.connection, created)


def submit_expense_reports(message: Decoded[SubmitExpenseReportsV1], uow: UnitOfWork) -> None:
    legal_entity = message.envelope.legal_entity
    _setup(uow, legal_entity)
    ids = [row.report_id for row in message.payload.rows]
    reports = report_store.reports_by_id(uow.connection, legal_entity, ids, for_update=True)
    elsewhere = _held_elsewhere(uow, legal_entity, ids, reports)
    submitted, refusals = [], Refusals("submit_expense_reports")
    for report_id in ids:
        with refusals.row():
            refuse_report_of_another_company(report_id, legal_entity, elsewhere.get(report_id))
            submitted.append(submit_report(reports.get(report_id), report_id))
    refusals.raise_if_any()
    report_store.save_statuses(uow.connection, submitted)


def approve_expense_reports(message: Decoded[ApproveExpenseReportsV1], uow: UnitOfWork) -> None:
    legal_entity = message.envelope.legal_entity
    rows = message.payload.rows
    setup = _setup(uow, legal_entity)
    ids = [row.report_id for row in rows]
    reports = report_store.reports_by_id(uow.connection, legal_entity, ids, for_update=True)
    elsewhere = _held_elsewhere(uow, legal_entity, ids, reports)
    projects = report_store.projects_by_id(
        uow.connection, (line.project_id for report in reports.values() for line in report.lines)
    )
    refusals = Refusals("approve_expense_reports")
    for row in rows:  # one report may be approved by several project managers in one batch
        with refusals.row():
            refuse_report_of_another_company(row.report_id, legal_entity, elsewhere.get(row.report_id))
            reports[row.report_id] = approve_report(reports.get(row.report_id), row.report_id, row.approver, projects=projects, setup=setup)
    refusals.raise_if_any()
    report_store.save_approvals(uow.connection, [reports[report_id] for report_id in {row.report_id for row in rows}])


def post_expense_reports(message: Decoded[PostExpenseReportsV1], uow: UnitOfWork) -> None:
    """Post each report as one balanced voucher; its project lines travel to Dataverse as one message."""
    legal_entity = message.envelope.legal_entity
    ids = [row.report_id for row in message.payload.rows]
    setup = _setup(uow, legal_entity)
    reports = report_store.reports_by_id(uow.connection, legal_entity, ids, for_update=True)
    elsewhere = _held_elsewhere(uow, legal_entity, ids, reports)
    rates = reference_store.rates_into(
        uow.connection, setup.company.accounting_currency, (line.currency for r in reports.values() for line in r.lines)
    )
    posting_date = message.envelope.occurred_at.date()
    postings, refusals = [], Refusals("post_expense_reports")
    for report_id in ids:
        report = reports.get(report_id)
        with refusals.row():
            refuse_report_of_another_company(report_id, legal_entity, elsewhere.get(report_id))
            if report is None:
                raise NotYet(f"report {report_id} does not exist (yet)")
            postings.append(post_expense_report(report, setup, rates, posting_date))
    refusals.raise_if_any()
    report_store.save_postings(uow.connection, postings)
    for posting in postings:
        _send_expenses(posting, uow)


def _send_expenses(posting: ExpensePosting, uow: UnitOfWork) -> None:
    report = posting.report
    rows = [
        ExpenseV1(
            expense_id=f"{report.report_id}-{p.line.line_number}",
            report_id=report.report_id,
            line_number=p.line.line_number,
            project_id=p.line.project_id,
            expense_category=p.line.expense_category,
            worker=report.worker,
            date=p.line.date,
            amount=p.line.amount,
            currency=p.line.currency,
            project_cost=p.project_cost,
            accounting_currency=posting.vendor.currency,
            project_cost_accounting=p.project_cost_accounting,
            exchange_rate=p.exchange_rate,
            voucher=posting.voucher,
        )
        for p in posting.lines
        if p.line.project_id is not None
    ]
    if rows:  # lines outside any project stay in finance
        uow.emit(
            table_map(MSDYN_EXPENSES.name).outbound,
            MSDYN_EXPENSES.name,
            MSDYN_EXPENSES.latest,
            ExpensesV1(rows=rows),
            correlation_id=report_correlation(report.legal_entity, report.report_id),
            legal_entity=report.legal_entity,
        )
