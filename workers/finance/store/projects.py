"""Projects as finance holds them, read for an update: locked until the transaction ends."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from contracts.fields import ProjectStatus
from shared.case_variants import held_in_another_case
from workers.finance.domain.expense_reports import FinanceProject
from workers.finance.tables import projects


def projects_in_another_case(connection: Connection, project_ids: Iterable[str]) -> dict[str, str]:
    """Those of ``project_ids`` held only in another case (by any company: project ids are unique), as held."""
    return held_in_another_case(connection, projects.c.project_id, project_ids)


def projects_for_update(connection: Connection, project_ids: Iterable[str]) -> dict[str, FinanceProject]:
    """The projects by id, row-locked on PostgreSQL (SQLite's writers are serialised already).

    A change finance makes and a row arriving from Dataverse for the same project then decide
    one after the other, each on the other's result.
    """
    wanted = sorted(set(project_ids))
    query = select(projects).where(projects.c.project_id.in_(wanted)).order_by(projects.c.project_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = connection.execute(query).mappings()
    return {row["project_id"]: FinanceProject(**{**row, "status": ProjectStatus(row["status"])}) for row in rows}
