"""The automated approval of an expense record, on plain objects: which actuals it creates, or why it refuses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from contracts.actuals import ActualV1
from contracts.fields import ProjectStatus, TransactionClassification, TransactionType
from workers.dataverse.domain.approvals import (
    MAX_REFERENCE_LENGTH,
    ApprovalRefused,
    actual_id,
    approve_expense,
    run_approval,
)
from workers.dataverse.domain.expenses import ExpenseRecord
from workers.dataverse.domain.projects import Project

USPM_CATEGORIES = frozenset({"HOTEL", "AIRFARE"})


def project(**changes: object) -> Project:
    base = Project(legal_entity="USPM", project_id="PRJ-1", name="Contoso rollout", project_manager="maria", billable=True)
    return dataclasses.replace(base, **changes)


def expense(**changes: object) -> ExpenseRecord:
    """A hotel night in EUR on a USPM project: 119.00 paid, 100.00 project cost, 108.37 USD as posted."""
    base = ExpenseRecord(
        legal_entity="USPM",
        expense_id="EXP-7-1",
        report_id="EXP-7",
        line_number=1,
        project_id="PRJ-1",
        expense_category="HOTEL",
        worker="maria",
        date=dt.date(2026, 3, 2),
        amount=Decimal("119.00"),
        currency="EUR",
        project_cost=Decimal("100.00"),
        accounting_currency="USD",
        project_cost_accounting=Decimal("108.37"),
        exchange_rate=Decimal("1.08370000"),
        voucher="GJ-000042",
    )
    return dataclasses.replace(base, **changes)


def test_a_billable_project_gets_a_cost_and_an_unbilled_sales_actual() -> None:
    # Given an expense record on an active, billable project of its own company
    # When it is approved
    actuals = approve_expense(expense(), project(billable=True), USPM_CATEGORIES)

    # Then it has a cost actual and an unbilled sales actual, both of classification Expense
    assert [(a.actual_id, a.transaction_type) for a in actuals] == [
        ("EXP-7-1-COST", TransactionType.COST),
        ("EXP-7-1-SALES", TransactionType.UNBILLED_SALES),
    ]
    assert {a.transaction_classification for a in actuals} == {TransactionClassification.EXPENSE}
    assert [int(a.transaction_type) for a in actuals] == [192350000, 192350005]
    assert int(actuals[0].transaction_classification) == 192350001


def test_a_non_billable_project_gets_a_cost_actual_only() -> None:
    actuals = approve_expense(expense(), project(billable=False), USPM_CATEGORIES)

    assert [(a.actual_id, a.transaction_type) for a in actuals] == [("EXP-7-1-COST", TransactionType.COST)]


def test_amounts_are_the_project_cost_copied_to_the_cent_and_sales_are_billed_at_cost() -> None:
    actuals = approve_expense(expense(), project(billable=True), USPM_CATEGORIES)

    for actual in actuals:
        assert (actual.amount, actual.currency) == (Decimal("100.00"), "EUR")
        assert (actual.accounting_amount, actual.accounting_currency) == (Decimal("108.37"), "USD")
        assert actual.exchange_rate == Decimal("1.08370000")
        assert (actual.legal_entity, actual.expense_id, actual.project_id) == ("USPM", "EXP-7-1", "PRJ-1")
        assert (actual.expense_category, actual.date) == ("HOTEL", dt.date(2026, 3, 2))
        assert actual.skip_sync is False
    # The sales tax the employee paid (119.00 - 100.00) is not project cost
    assert sum(a.amount for a in actuals) == Decimal("200.00")


def test_a_closed_project_refuses_the_approval() -> None:
    with pytest.raises(ApprovalRefused, match=r"^project PRJ-1 is closed$"):
        approve_expense(expense(), project(status=ProjectStatus.CLOSED), USPM_CATEGORIES)


def test_another_companys_expense_category_refuses_the_approval() -> None:
    # Given RAIL is an expense category of DEMF only, so USPM's categories do not hold it
    with pytest.raises(ApprovalRefused, match=r"^expense category RAIL is not an expense category of company USPM$"):
        approve_expense(expense(expense_category="RAIL"), project(), USPM_CATEGORIES)


def test_a_project_of_another_company_refuses_the_approval() -> None:
    with pytest.raises(ApprovalRefused, match=r"^project PRJ-1 belongs to company DEMF, not USPM$"):
        approve_expense(expense(), project(legal_entity="DEMF"), USPM_CATEGORIES)


def test_a_missing_project_refuses_the_approval() -> None:
    with pytest.raises(ApprovalRefused, match=r"^project PRJ-1 does not exist$"):
        approve_expense(expense(), None, USPM_CATEGORIES)


def test_every_broken_rule_is_named_at_once() -> None:
    with pytest.raises(ApprovalRefused) as refused:
        approve_expense(expense(expense_category="RAIL"), project(status=ProjectStatus.CLOSED), USPM_CATEGORIES)

    assert str(refused.value) == (
        "project PRJ-1 is closed; expense category RAIL is not an expense category of company USPM"
    )


def test_a_job_run_reports_its_actuals_or_its_error_and_never_raises() -> None:
    succeeded = run_approval("JOB-1", expense(), project(), USPM_CATEGORIES)
    failed = run_approval("JOB-2", expense(), project(status=ProjectStatus.CLOSED), USPM_CATEGORIES)

    assert succeeded.succeeded and len(succeeded.actuals) == 2 and succeeded.error is None
    assert not failed.succeeded and failed.actuals == () and failed.error == "project PRJ-1 is closed"


def test_the_same_expense_always_gives_the_same_actual_ids() -> None:
    first = approve_expense(expense(), project(), USPM_CATEGORIES)
    again = approve_expense(expense(), project(), USPM_CATEGORIES)

    assert [a.actual_id for a in first] == [a.actual_id for a in again]


def test_a_long_expense_id_still_gives_actual_ids_that_fit_a_contract_reference() -> None:
    long_id = "EXPENSE-REPORT/2026/USPM-000000000123456789/LINE-000999"
    ids = [actual_id(long_id, "COST"), actual_id(long_id, "SALES")]

    assert len(long_id) == 55 and len(f"{long_id}-SALES") > MAX_REFERENCE_LENGTH
    assert all(len(each) <= MAX_REFERENCE_LENGTH for each in ids)
    assert ids[0] != ids[1] and ids[1].endswith("-SALES")
    assert actual_id(long_id, "COST") == ids[0]


def test_actuals_fit_the_msdyn_actuals_contract() -> None:
    long_expense = expense(expense_id="EXPENSE-REPORT/2026/USPM-000000000123456789/LINE-000999")
    for actual in approve_expense(long_expense, project(), USPM_CATEGORIES):
        row = ActualV1(
            **{name: getattr(actual, name) for name in ActualV1.model_fields},
        )
        assert row.amount == Decimal("100.00")
