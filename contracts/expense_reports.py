"""Expense reports in finance: created, submitted, approved by project managers, posted."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from contracts.batch import MAX_ROWS, Batch, Row, Rows
from contracts.fields import Code, Description, LineNumber, Person
from contracts.money import Amount, CurrencyCode
from contracts.registry import Contract, Kind, Scope
from contracts.wire import Date


class ExpenseLineV1(Row):
    line_number: LineNumber
    project_id: Code | None = Field(default=None, description="None for an expense outside any project")
    expense_category: Code
    date: Date
    amount: Amount = Field(description="What the employee paid, sales tax included")
    currency: CurrencyCode
    tax_code: Code | None = None
    description: Description | None = None


class NewExpenseReportV1(Row):
    report_id: Code
    worker: Person
    lines: Annotated[list[ExpenseLineV1], Field(min_length=1, max_length=MAX_ROWS)]

    @model_validator(mode="after")
    def _line_numbers_unique(self) -> "NewExpenseReportV1":
        numbers = [line.line_number for line in self.lines]
        if len(numbers) != len(set(numbers)):
            raise ValueError(f"report {self.report_id} repeats a line number")
        return self


class CreateExpenseReportsV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("report_id",)
    rows: Rows[NewExpenseReportV1]


class ReportRefV1(Row):
    report_id: Code


class SubmitExpenseReportsV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("report_id",)
    rows: Rows[ReportRefV1]


class ApprovalV1(Row):
    report_id: Code
    approver: Person


class ApproveExpenseReportsV1(Batch):
    """Each approver approves the lines of the report whose project they manage."""

    key_fields: ClassVar[tuple[str, ...]] = ("report_id", "approver")
    rows: Rows[ApprovalV1]


class PostExpenseReportsV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("report_id",)
    rows: Rows[ReportRefV1]


def _command(name: str, model: type[Batch], description: str) -> Contract:
    return Contract(name=name, kind=Kind.COMMAND, scope=Scope.LEGAL_ENTITY, versions=(model,), description=description)


CREATE_EXPENSE_REPORTS = _command(
    "create_expense_reports", CreateExpenseReportsV1, "Upstream -> finance: expense reports with their lines."
)
SUBMIT_EXPENSE_REPORTS = _command(
    "submit_expense_reports", SubmitExpenseReportsV1, "Upstream -> finance: submit draft expense reports."
)
APPROVE_EXPENSE_REPORTS = _command(
    "approve_expense_reports", ApproveExpenseReportsV1, "Upstream -> finance: a project manager approves lines."
)
POST_EXPENSE_REPORTS = _command(
    "post_expense_reports", PostExpenseReportsV1, "Upstream -> finance: post approved expense reports."
)
