"""Expense reports: created by a worker, submitted, approved line by line, then posted.

A project line is approved by the project manager of its project; a line on no project by the
worker's manager. Anyone else is refused. A report is approved once every line is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from contracts.fields import ProjectStatus
from shared.errors import BusinessRuleViolation, NotYet, Refusals
from workers.finance.domain.reference import CompanySetup


class ReportStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    POSTED = "posted"


@dataclass(frozen=True)
class FinanceProject:
    """Finance's copy of a Dataverse project, kept by the msdyn_projects map."""

    legal_entity: str
    project_id: str
    name: str
    project_manager: str
    billable: bool
    status: ProjectStatus
    #: Its version (contracts/row_versions.py): as it came from the bridge, or finance's own change's.
    row_version: int = 0
    row_origin: str = "dataverse"


@dataclass(frozen=True)
class ExpenseLine:
    legal_entity: str
    report_id: str
    line_number: int
    project_id: str | None
    expense_category: str
    date: dt.date
    amount: Decimal
    currency: str
    tax_code: str | None = None
    description: str | None = None
    approved_by: str | None = None


@dataclass(frozen=True)
class ExpenseReport:
    legal_entity: str
    report_id: str
    worker: str
    status: ReportStatus
    lines: tuple[ExpenseLine, ...]

    @property
    def project_lines(self) -> tuple[ExpenseLine, ...]:
        return tuple(line for line in self.lines if line.project_id is not None)


def create_report(
    report: ExpenseReport,
    *,
    existing: ExpenseReport | None,
    setup: CompanySetup,
    categories: frozenset[str],
    projects: Mapping[str, FinanceProject],
) -> ExpenseReport:
    """Check a new (or redrafted) report against the company's set-up; returns it as a draft."""
    if existing is not None and existing.status is not ReportStatus.DRAFT:
        raise BusinessRuleViolation(f"report {report.report_id} is {existing.status} and closed to changes")
    company = report.legal_entity
    refusals = Refusals(f"report {report.report_id}")
    with refusals.row():
        if report.worker not in setup.workers:
            raise BusinessRuleViolation(f"worker {report.worker!r} is not a worker of company {company}")
    for line in report.lines:
        with refusals.row(f"line {line.line_number}"):
            _check_line(line, company, setup, categories, projects)
    refusals.raise_if_any()
    return replace(report, status=ReportStatus.DRAFT)


def _check_line(
    line: ExpenseLine, company: str, setup: CompanySetup, categories: frozenset[str], projects: Mapping[str, FinanceProject]
) -> None:
    if line.expense_category not in categories:
        raise BusinessRuleViolation(f"expense category {line.expense_category!r} is not an expense category of company {company}")
    if line.tax_code is not None and line.tax_code not in setup.tax_codes:
        raise BusinessRuleViolation(f"tax code {line.tax_code!r} is not a tax code of company {company}")
    if line.project_id is None:
        return
    project = projects.get(line.project_id)
    if project is None:
        # Projects come from Dataverse through msdyn_projects; this one may still be on its way.
        raise NotYet(f"project {line.project_id!r} is not known to finance yet")
    if project.legal_entity != company:
        raise BusinessRuleViolation(f"project {line.project_id!r} is not a project of company {company}")


def submit_report(report: ExpenseReport | None, report_id: str) -> ExpenseReport:
    report = _found(report, report_id)
    if report.status is not ReportStatus.DRAFT:
        raise BusinessRuleViolation(f"report {report_id} is {report.status}; only a draft can be submitted")
    return replace(report, status=ReportStatus.SUBMITTED)


def approve_report(
    report: ExpenseReport | None,
    report_id: str,
    approver: str,
    *,
    projects: Mapping[str, FinanceProject],
    setup: CompanySetup,
) -> ExpenseReport:
    """The approver approves every line they may approve; the report is approved when all lines are."""
    report = _found(report, report_id)
    if report.status is ReportStatus.DRAFT:
        raise NotYet(f"report {report_id} is not submitted yet")
    if report.status is not ReportStatus.SUBMITTED:
        raise BusinessRuleViolation(f"report {report_id} is {report.status}; only a submitted report can be approved")
    manager = setup.workers[report.worker].manager if report.worker in setup.workers else None
    lines, approved_any = [], False
    for line in report.lines:
        if line.approved_by is None and approver == _approver_of(line, projects, manager):
            line = replace(line, approved_by=approver)
            approved_any = True
        lines.append(line)
    if not approved_any:
        raise BusinessRuleViolation(
            f"{approver!r} may not approve any open line of report {report_id}: project lines are approved by "
            "their project's manager, other lines by the worker's manager"
        )
    done = all(line.approved_by is not None for line in lines)
    return replace(report, lines=tuple(lines), status=ReportStatus.APPROVED if done else ReportStatus.SUBMITTED)


def _approver_of(line: ExpenseLine, projects: Mapping[str, FinanceProject], manager: str | None) -> str | None:
    if line.project_id is None:
        return manager
    project = projects.get(line.project_id)
    return project.project_manager if project else None


def refuse_report_of_another_company(report_id: str, legal_entity: str, held_as: tuple[str, str] | None) -> None:
    """A report id this company does not hold, naming another company's report or this company's in
    another case, is refused for good: waiting cannot make it this company's report (and a report
    differing only in case from a held one is never created)."""
    if held_as is None:
        return
    company, held_id = held_as
    if company != legal_entity:
        shown = "" if held_id == report_id else f" (as {held_id!r})"
        raise BusinessRuleViolation(f"report {report_id!r} is a report of company {company}{shown}, not of {legal_entity}")
    raise BusinessRuleViolation(
        f"report {report_id!r} does not exist in company {legal_entity}; report {held_id!r} does "
        "(ids are kept as sent: they differ in case)"
    )


def _found(report: ExpenseReport | None, report_id: str) -> ExpenseReport:
    if report is None:
        raise NotYet(f"report {report_id} does not exist (yet)")
    return report
