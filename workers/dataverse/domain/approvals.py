"""The automated approval of an expense record, and the actuals it creates. Plain Python, no SQL.

An expense record is approved when its project exists, is active and belongs to the record's
company, and its expense category is one of that company's expense categories. Approval creates
actuals of transaction classification Expense: a cost actual for every record, and an unbilled
sales actual as well when the project is billable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import NamedTuple, Protocol

from contracts.fields import TransactionClassification, TransactionType
from shared.errors import BusinessRuleViolation
from workers.dataverse.domain.actuals import Actual
from workers.dataverse.domain.projects import Project


class ApprovalRefused(BusinessRuleViolation):
    """Raised when an expense record breaks a rule of its automated approval."""


class ExpenseToApprove(Protocol):
    """What the approval reads of an expense record.

    An :class:`~workers.dataverse.domain.expenses.ExpenseRecord` is one; the jobs of a batch run on
    these columns alone, as read (``job_repository.ClaimedExpense``), with no record made of each.
    """

    @property
    def expense_id(self) -> str: ...
    @property
    def legal_entity(self) -> str: ...
    @property
    def project_id(self) -> str: ...
    @property
    def expense_category(self) -> str: ...
    @property
    def date(self) -> dt.date: ...
    @property
    def currency(self) -> str: ...
    @property
    def project_cost(self) -> Decimal: ...
    @property
    def accounting_currency(self) -> str: ...
    @property
    def project_cost_accounting(self) -> Decimal: ...
    @property
    def exchange_rate(self) -> Decimal: ...


class ApprovalOutcome(NamedTuple):
    """What one approval job came to: the actuals it creates, or the reason it failed.

    A named tuple, like :class:`Actual`: one is made per job of every batch.
    """

    job_id: str
    expense_id: str
    actuals: tuple[Actual, ...] = ()
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


def approval_problems(expense: ExpenseToApprove, project: Project | None, company_categories: frozenset[str]) -> list[str]:
    """Every rule the record breaks, each in words an operator can act on."""
    problems = []
    if project is None:
        problems.append(f"project {expense.project_id} does not exist")
    elif project.legal_entity != expense.legal_entity:
        problems.append(
            f"project {expense.project_id} belongs to company {project.legal_entity}, not {expense.legal_entity}"
        )
    elif not project.is_active:
        problems.append(f"project {expense.project_id} is closed")
    if expense.expense_category not in company_categories:
        problems.append(
            f"expense category {expense.expense_category} is not an expense category of company {expense.legal_entity}"
        )
    return problems


def approve_expense(expense: ExpenseToApprove, project: Project | None, company_categories: frozenset[str]) -> list[Actual]:
    """The actuals of an approved expense record; raises ApprovalRefused when a rule is broken.

    ``company_categories`` holds the expense categories of the record's company only.
    """
    problems = approval_problems(expense, project, company_categories)
    if problems:
        raise ApprovalRefused("; ".join(problems))
    assert project is not None  # approval_problems refuses a missing project
    actuals = [_actual(expense, TransactionType.COST, "COST")]
    if project.billable:
        actuals.append(_actual(expense, TransactionType.UNBILLED_SALES, "SALES"))
    return actuals


def run_approval(
    job_id: str, expense: ExpenseToApprove, project: Project | None, company_categories: frozenset[str]
) -> ApprovalOutcome:
    """Run one approval job: its actuals on success, its error on refusal, never an exception."""
    try:
        actuals = approve_expense(expense, project, company_categories)
    except ApprovalRefused as refused:
        return ApprovalOutcome(job_id=job_id, expense_id=expense.expense_id, error=str(refused))
    return ApprovalOutcome(job_id=job_id, expense_id=expense.expense_id, actuals=tuple(actuals))


#: A contract reference (expense id, actual id) holds at most 60 characters.
MAX_REFERENCE_LENGTH = 60


def actual_id(expense_id: str, suffix: str) -> str:
    """``<expense id>-COST`` or ``<expense id>-SALES``; a hash of the expense id when that is too long."""
    readable = f"{expense_id}-{suffix}"
    if len(readable) <= MAX_REFERENCE_LENGTH:
        return readable
    digest = hashlib.sha256(expense_id.encode("utf-8")).hexdigest().upper()
    return f"ACT-{digest[: MAX_REFERENCE_LENGTH - len(suffix) - 5]}-{suffix}"


def _actual(expense: ExpenseToApprove, transaction_type: TransactionType, suffix: str) -> Actual:
    """An actual of the expense record at the record's project cost.

    Sales actuals are billed at cost: the unbilled sales amount is the project cost itself. No
    sales price list or markup reaches Dataverse through ``msdyn_expenses``, and billing at cost
    is what a project without a price list does; a markup would be a new contract version.

    The id derives from the expense id and the transaction type, so a re-run approval (or a
    redelivered message) writes the same actuals, never a second set.
    """
    return Actual(
        actual_id=actual_id(expense.expense_id, suffix),
        legal_entity=expense.legal_entity,
        expense_id=expense.expense_id,
        project_id=expense.project_id,
        expense_category=expense.expense_category,
        transaction_classification=TransactionClassification.EXPENSE,
        transaction_type=transaction_type,
        date=expense.date,
        amount=expense.project_cost,
        currency=expense.currency,
        accounting_amount=expense.project_cost_accounting,
        accounting_currency=expense.accounting_currency,
        exchange_rate=expense.exchange_rate,
    )
