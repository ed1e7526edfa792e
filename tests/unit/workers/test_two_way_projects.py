"""Both sides of the two-way map msdyn_projects on plain records: who applies what, and which version."""

from __future__ import annotations

import pytest

from contracts.envelope import Side
from contracts.fields import ProjectStatus
from contracts.row_versions import SideOutcome
from shared.errors import BusinessRuleViolation
from workers.dataverse.domain.projects import Project, project_changed_in_finance
from workers.finance.domain.expense_reports import FinanceProject
from workers.finance.domain.projects import change_project, project_from_dataverse

MASTER = Side.DATAVERSE


def finance_copy(version: int = 1, origin: str = "dataverse", name: str = "Audit") -> FinanceProject:
    return FinanceProject("DEMF", "P-1", name, "maria", True, ProjectStatus.ACTIVE, version, origin)


def dataverse_row(version: int, origin: str = "dataverse", status: str = "closed") -> dict:
    return {"project_id": "P-1", "name": "Audit", "project_manager": "maria", "billable": True,
            "status": status, "row_version": version, "row_origin": origin}


# -- finance -------------------------------------------------------------------------------------


def test_finance_applies_a_newer_project_from_dataverse_with_the_version_it_came_with() -> None:
    outcome, project = project_from_dataverse("DEMF", dataverse_row(2), finance_copy(1), MASTER)
    assert outcome is SideOutcome.APPLY
    assert (project.status, project.row_version, project.row_origin) == (ProjectStatus.CLOSED, 2, "dataverse")


def test_finance_keeps_its_copy_when_the_row_is_older_or_the_same() -> None:
    assert project_from_dataverse("DEMF", dataverse_row(1), finance_copy(2, "finance"), MASTER) == (SideOutcome.OLDER, None)
    assert project_from_dataverse("DEMF", dataverse_row(2), finance_copy(2), MASTER) == (SideOutcome.SAME, None)


def test_the_master_s_change_from_the_same_version_overwrites_finance_s() -> None:
    outcome, project = project_from_dataverse("DEMF", dataverse_row(2), finance_copy(2, "finance", "Renamed"), MASTER)
    assert outcome is SideOutcome.APPLY and (project.name, project.row_origin) == ("Audit", "dataverse")


def test_finance_s_own_change_makes_the_next_version_in_its_name() -> None:
    renamed = change_project("DEMF", "P-1", "Audit 2026", None, finance_copy(3))
    assert (renamed.name, renamed.status, renamed.row_version, renamed.row_origin) == ("Audit 2026", ProjectStatus.ACTIVE, 4, "finance")
    assert change_project("DEMF", "P-1", "Audit", ProjectStatus.ACTIVE, finance_copy(3)) == finance_copy(3)


@pytest.mark.parametrize(("legal_entity", "held"), [("DEMF", None), ("USPM", finance_copy())])
def test_finance_cannot_change_an_unknown_or_another_company_s_project(legal_entity, held) -> None:
    with pytest.raises(BusinessRuleViolation):
        change_project(legal_entity, "P-1", "X", None, held)


# -- Dataverse -----------------------------------------------------------------------------------


def dataverse_project(version: int, origin: str = "dataverse") -> Project:
    return Project("DEMF", "P-1", "Audit", "maria", True, ProjectStatus.ACTIVE, version, origin)


def finance_row(version: int, name: str = "Audit 2026") -> dict:
    return {"project_id": "P-1", "name": name, "project_manager": None, "billable": None,
            "status": "active", "row_version": version, "row_origin": "finance"}


def test_dataverse_applies_finance_s_name_and_status_and_keeps_its_own_manager() -> None:
    outcome, project = project_changed_in_finance("DEMF", finance_row(2), dataverse_project(1), MASTER)
    assert outcome is SideOutcome.APPLY
    assert (project.name, project.project_manager, project.billable, project.row_version, project.row_origin) == (
        "Audit 2026", "maria", True, 2, "finance"
    )


def test_dataverse_never_applies_finance_s_losing_change() -> None:
    assert project_changed_in_finance("DEMF", finance_row(2), dataverse_project(2), MASTER) == (SideOutcome.LOST, None)


def test_dataverse_refuses_a_change_to_a_project_it_does_not_have() -> None:
    with pytest.raises(BusinessRuleViolation):
        project_changed_in_finance("DEMF", finance_row(2), None, MASTER)
