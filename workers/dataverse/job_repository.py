"""The system jobs table: creating approval jobs, claiming them, recording how they ended, retrying them.

Every statement handles a whole batch. Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two processes handed the same job never both run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import Connection, and_, bindparam, or_, select

from shared.database import inserted_keys, supports_skip_locked, update_rows
from shared.sql_lists import ValueList, one_of
from workers.dataverse.domain.approvals import ApprovalOutcome
from workers.dataverse.domain.system_jobs import JobStatus, approval_job_id
from workers.dataverse.tables import expenses, system_jobs


@dataclass(frozen=True)
class JobView:
    """A system job as an operator sees it."""

    job_id: str
    legal_entity: str
    expense_id: str
    correlation_id: str
    status: str
    attempts: int
    error: str | None
    claimed_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def create_approval_jobs(
    connection: Connection, legal_entity: str, expenses: Sequence[tuple[str, str]], now: datetime
) -> list[str]:
    """One waiting approval job per expense record that has none yet; returns the new jobs' ids, in order.

    ``expenses`` are (expense id, correlation id of its business document) pairs. One statement:
    a record's job stands once made (its id and its expense id are unique), so a job that exists
    already (a redelivered record, or a concurrent delivery that won the race) is left as it is,
    and only the jobs inserted are returned.
    """
    rows = [
        {
            "job_id": approval_job_id(expense_id),
            "legal_entity": legal_entity,
            "expense_id": expense_id,
            "correlation_id": correlation_id,
            "status": JobStatus.WAITING.value,
            "attempts": 0,
            "created_at": now,
        }
        for expense_id, correlation_id in expenses
    ]
    inserted = {key[0] for key in inserted_keys(connection, system_jobs, rows)}
    return [row["job_id"] for row in rows if row["job_id"] in inserted]


def claim_jobs(
    connection: Connection, legal_entity: str, job_ids: Iterable[str], claimed_by: str, now: datetime
) -> list[str]:
    """Mark the named jobs in progress for ``claimed_by``; returns the ids it got, in order.

    A job is claimable while waiting (or in progress for this same message, as rows written before
    claims joined the run's transaction may be). One statement: the jobs are chosen and locked
    (another runner skips them, on PostgreSQL) and claimed at once, in the caller's transaction.
    """
    claimed = connection.scalars(
        _CLAIM_JOBS,
        {
            "b_job_ids": sorted(set(job_ids)),
            "b_legal_entity": legal_entity,
            "b_claimed_by": claimed_by,
            "b_now": now,
        },
    )
    return sorted(claimed.all())  # all(): one fetch, not one per row


_CLAIMABLE = (
    select(system_jobs.c.job_id)
    .where(
        one_of(system_jobs.c.job_id, bindparam("b_job_ids", type_=ValueList())),
        system_jobs.c.legal_entity == bindparam("b_legal_entity"),
        or_(
            system_jobs.c.status == JobStatus.WAITING.value,
            and_(system_jobs.c.status == JobStatus.IN_PROGRESS.value, system_jobs.c.claimed_by == bindparam("b_claimed_by")),
        ),
    )
    .order_by(system_jobs.c.job_id)
    .with_for_update(skip_locked=True)  # rendered on PostgreSQL only; SQLite has a single writer
)
_CLAIM_JOBS = (
    system_jobs.update()
    .where(system_jobs.c.job_id.in_(_CLAIMABLE.scalar_subquery()))
    .values(
        status=JobStatus.IN_PROGRESS.value,
        claimed_by=bindparam("b_claimed_by"),
        started_at=bindparam("b_now"),
        finished_at=None,
        error=None,
        attempts=system_jobs.c.attempts + 1,
    )
    .returning(system_jobs.c.job_id)
)


class ClaimedExpense(NamedTuple):
    """A claimed job and the columns of its expense record that the approval reads (``ExpenseToApprove``).

    A named tuple made from each row as read: the approval reads its fields by name, which a named
    tuple answers at a tenth of the cost of a SQLAlchemy row's attribute lookup.
    """

    job_id: str
    expense_id: str
    legal_entity: str
    project_id: str
    expense_category: str
    date: date
    currency: str
    project_cost: Decimal
    accounting_currency: str
    project_cost_accounting: Decimal
    exchange_rate: Decimal


def claimed_expenses(connection: Connection, job_ids: Sequence[str], claimed_by: str) -> list[ClaimedExpense]:
    """The jobs ``claimed_by`` holds in progress among ``job_ids``, each with its expense record, by job id."""
    result = connection.execute(_CLAIMED_EXPENSES, {"b_job_ids": sorted(set(job_ids)), "b_claimed_by": claimed_by})
    return list(map(ClaimedExpense._make, result.all()))  # all(): one fetch, not one per row


_CLAIMED_EXPENSES = (
    select(system_jobs.c.job_id, *(expenses.c[name] for name in ClaimedExpense._fields[1:]))
    .join(expenses, expenses.c.expense_id == system_jobs.c.expense_id)
    .where(
        one_of(system_jobs.c.job_id, bindparam("b_job_ids", type_=ValueList())),
        system_jobs.c.status == JobStatus.IN_PROGRESS.value,
        system_jobs.c.claimed_by == bindparam("b_claimed_by"),
    )
    .order_by(system_jobs.c.job_id)
)


def record_outcomes(connection: Connection, outcomes: Sequence[ApprovalOutcome], claimed_by: str, now: datetime) -> None:
    """Succeeded, or failed with its error: each job (still held by ``claimed_by``) in one statement
    per kind of outcome.

    The succeeded jobs all take the same columns, so they go by their ids alone, and only the
    failed jobs (usually none) carry a row each, with their error.
    """
    succeeded = [outcome.job_id for outcome in outcomes if outcome.succeeded]
    if succeeded:
        connection.execute(_RECORD_SUCCESSES, {"b_job_ids": succeeded, "b_claimed_by": claimed_by, "b_now": now})
    failed = [
        {
            "job_id": outcome.job_id,
            "claimed_by": claimed_by,
            "status": JobStatus.FAILED.value,
            "error": outcome.error,
            "finished_at": now,
        }
        for outcome in outcomes
        if not outcome.succeeded
    ]
    update_rows(connection, system_jobs, failed, key=("job_id", "claimed_by"))


_RECORD_SUCCESSES = (
    system_jobs.update()
    .where(
        one_of(system_jobs.c.job_id, bindparam("b_job_ids", type_=ValueList())),
        system_jobs.c.claimed_by == bindparam("b_claimed_by"),
    )
    .values(status=JobStatus.SUCCEEDED.value, error=None, finished_at=bindparam("b_now"))
)


def list_jobs(connection: Connection, status: JobStatus | None = None) -> list[JobView]:
    """Every system job (of one status, if given), oldest first."""
    query = select(*(system_jobs.c[name] for name in JobView.__dataclass_fields__)).order_by(
        system_jobs.c.created_at, system_jobs.c.job_id
    )
    if status is not None:
        query = query.where(system_jobs.c.status == status.value)
    return [JobView(**row) for row in connection.execute(query).mappings()]


def jobs_by_id(connection: Connection, job_ids: Iterable[str]) -> dict[str, JobView]:
    query = select(*(system_jobs.c[name] for name in JobView.__dataclass_fields__)).where(
        system_jobs.c.job_id.in_(sorted(set(job_ids)))
    )
    return {row["job_id"]: JobView(**row) for row in connection.execute(query).mappings()}


def reset_failed_jobs(connection: Connection, job_ids: Iterable[str] | None) -> list[JobView]:
    """Failed jobs back to waiting, error cleared, attempts kept; all failed jobs when ``job_ids`` is None.

    Returns the jobs it reset, as they were before (with their legal entity and correlation id).
    """
    query = select(*(system_jobs.c[name] for name in JobView.__dataclass_fields__)).where(
        system_jobs.c.status == JobStatus.FAILED.value
    )
    if job_ids is not None:
        query = query.where(system_jobs.c.job_id.in_(sorted(set(job_ids))))
    if supports_skip_locked(connection):
        query = query.with_for_update(skip_locked=True)
    failed = [JobView(**row) for row in connection.execute(query.order_by(system_jobs.c.job_id)).mappings()]
    if failed:
        connection.execute(
            system_jobs.update()
            .where(system_jobs.c.job_id.in_([job.job_id for job in failed]))
            .values(
                status=JobStatus.WAITING.value, error=None, claimed_by=None, started_at=None, finished_at=None
            )
        )
    return failed
