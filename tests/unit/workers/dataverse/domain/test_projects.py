"""Projects keep their company and their status; only set_project_status closes or reopens them."""

from __future__ import annotations

import pytest

from contracts.fields import ProjectStatus
from shared.errors import BusinessRuleViolation
from workers.dataverse.domain.projects import Project, change_project_status, new_project


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
