"""Dataverse projects and their expense estimates.

A project keeps its company and its status (only set_project_status closes or reopens it); an
expense estimate is only made on a project of the company, with that company's categories.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.fields import ProjectStatus
from shared.errors import BusinessRuleViolation
from workers.dataverse.domain.projects import Project, change_project_status, estimate_expense, new_project


def project(status: ProjectStatus = ProjectStatus.ACTIVE, legal_entity: str = "USPM") -> Project:
    return Project(legal_entity, "PRJ-1", "Contoso rollout", "maria", True, status)


def test_a_new_project_is_active() -> None:
    created = new_project("USPM", Project("USPM", "PRJ-1", "Contoso rollout", "maria", True), None)

    assert created.status is ProjectStatus.ACTIVE and created.is_active


def test_creating_an_existing_project_again_keeps_its_status() -> None:
    renamed = Project("USPM", "PRJ-1", "Contoso rollout, phase 2", "jonas", False)

    updated = new_project("USPM", renamed, project(ProjectStatus.CLOSED))

    assert (updated.name, updated.project_manager, updated.status) == ("Contoso rollout, phase 2", "jonas", ProjectStatus.CLOSED)


def test_closing_and_reopening_a_project() -> None:
    closed = change_project_status("USPM", "PRJ-1", ProjectStatus.CLOSED, project())
    reopened = change_project_status("USPM", "PRJ-1", ProjectStatus.ACTIVE, closed)

    assert (closed.status, reopened.status) == (ProjectStatus.CLOSED, ProjectStatus.ACTIVE)
    assert reopened == project()


def test_another_company_cannot_close_a_project() -> None:
    with pytest.raises(BusinessRuleViolation, match="owned by company USPM, not DEMF"):
        change_project_status("DEMF", "PRJ-1", ProjectStatus.CLOSED, project())


def test_an_unknown_project_cannot_be_closed() -> None:
    with pytest.raises(BusinessRuleViolation, match="'PRJ-9' does not exist"):
        change_project_status("USPM", "PRJ-9", ProjectStatus.CLOSED, None)


# -- expense estimates ----------------------------------------------------------------------

USMF_PROJECT = Project("USMF", "PRJ-100", "Rollout", "pm.one", billable=True)
USMF_CATEGORIES = frozenset({"HOTEL-US", "MEALS-US"})


def estimate(**overrides: Any):
    arguments: dict[str, Any] = {
        "project_id": "PRJ-100",
        "line_number": 1,
        "expense_category": "HOTEL-US",
        "date": dt.date(2026, 3, 2),
        "quantity": Decimal("3"),
        "unit_cost": Decimal("120.00"),
        "currency": "USD",
        "project": USMF_PROJECT,
        "company_categories": USMF_CATEGORIES,
    }
    arguments.update(overrides)
    legal_entity = arguments.pop("legal_entity", "USMF")
    return estimate_expense(legal_entity, **arguments)


def test_three_nights_at_120_is_an_estimate_of_360():
    line = estimate()

    assert line.amount == Decimal("360.00")
    assert (line.legal_entity, line.project_id, line.line_number, line.expense_category) == ("USMF", "PRJ-100", 1, "HOTEL-US")
    assert (line.quantity, line.unit_cost, line.currency) == (Decimal("3"), Decimal("120.00"), "USD")


@pytest.mark.parametrize(
    "quantity, unit_cost, amount",
    [
        ("3", "33.333", "100.00"),  # 99.999 rounds up to the cent
        ("0.5", "0.01", "0.01"),  # 0.005: half a cent rounds up; half-even rounding would give 0.00
        ("2.5", "0.01", "0.03"),  # 0.025: half up gives 0.03; half-even would give 0.02
        ("0.5", "5.35", "2.68"),  # 2.675 exactly; the same product in binary floats rounds to 2.67
        ("7", "0.333", "2.33"),  # 2.331 rounds down
        ("1.0001", "10000.00", "10001.00"),  # four-decimal quantities are kept, not pre-rounded
    ],
)
def test_the_amount_is_quantity_times_unit_cost_rounded_half_up_to_the_cent(quantity, unit_cost, amount):
    line = estimate(quantity=Decimal(quantity), unit_cost=Decimal(unit_cost))

    assert line.amount == Decimal(amount)
    assert str(line.amount) == amount
    assert (line.quantity, line.unit_cost) == (Decimal(quantity), Decimal(unit_cost))  # inputs kept as given


def test_an_estimate_on_a_project_of_another_company_is_refused():
    with pytest.raises(BusinessRuleViolation, match=r"project 'PRJ-100' is not a project of company DEMF"):
        estimate(legal_entity="DEMF", company_categories=frozenset({"HOTEL-DE"}), expense_category="HOTEL-DE")


def test_an_estimate_on_an_unknown_project_is_refused():
    with pytest.raises(BusinessRuleViolation, match=r"project 'PRJ-404' is not a project of company USMF"):
        estimate(project_id="PRJ-404", project=None)


def test_an_estimate_with_another_companys_category_is_refused():
    """DEMF's HOTEL-DE exists, but it is not one of USMF's categories, so a USMF project cannot use it."""
    with pytest.raises(
        BusinessRuleViolation,
        match=r"expense category 'HOTEL-DE' is not an expense category of company USMF, which owns project 'PRJ-100'",
    ):
        estimate(expense_category="HOTEL-DE")


def test_an_estimate_with_no_categories_set_up_for_the_company_is_refused():
    with pytest.raises(BusinessRuleViolation):
        estimate(company_categories=frozenset())


def test_a_project_never_changes_company():
    existing = Project("DEMF", "PRJ-100", "Rollout", "pm.two", billable=False)

    with pytest.raises(BusinessRuleViolation, match=r"project 'PRJ-100' is owned by company DEMF, not USMF"):
        new_project("USMF", USMF_PROJECT, existing)

