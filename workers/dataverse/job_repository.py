"""The system jobs table: creating approval jobs, claiming them, recording how they ended, retrying them.

Every statement handles a whole batch. Claiming uses ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so two processes handed the same job never both run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, or_, select

from shared.database import insert_ignoring_duplicates, supports_skip_locked, update_rows
from shared.sql_lists import ValueList, one_of
from workers.dataverse.domain.approvals import ApprovalOutcome
from workers.dataverse.domain.expenses import ExpenseRecord
from workers.dataverse.domain.system_jobs import JobStatus, approval_job_id
from workers.dataverse.expense_repository import expense_record
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


_JOBS_OF_EXPENSES = select(system_jobs.c.expense_id).where(
    one_of(system_jobs.c.expense_id, bindparam("b_expense_ids", type_=ValueList()))
)


def create_approval_jobs(
    connection: Connection, legal_entity: str, expenses: Sequence[tuple[str, str]], now: datetime
) -> list[str]:
    """One waiting approval job per expense record that has none yet; returns the new jobs' ids.

    ``expenses`` are (expense id, correlation id of its business document) pairs.
    """
    existing = set(connection.scalars(_JOBS_OF_EXPENSES, {"b_expense_ids": sorted({e for e, _ in expenses})}))
    new = [
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
        if expense_id not in existing
    ]
    # A concurrent delivery of the same record may have won the race: its job stands, ours is dropped.
    insert_ignoring_duplicates(connection, system_jobs, new)
    return [row["job_id"] for row in new]


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
    return sorted(claimed)


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


def claimed_expenses(connection: Connection, job_ids: Sequence[str], claimed_by: str) -> dict[str, ExpenseRecord]:
    """Job id -> the expense record it approves, for the jobs ``claimed_by`` holds in progress."""
    rows = connection.execute(_CLAIMED_EXPENSES, {"b_job_ids": sorted(set(job_ids)), "b_claimed_by": claimed_by})
    return {row["job_id"]: expense_record(row) for row in rows.mappings()}


_CLAIMED_EXPENSES = (
    select(system_jobs.c.job_id, *expenses.columns)
    .join(expenses, expenses.c.expense_id == system_jobs.c.expense_id)
    .where(
        one_of(system_jobs.c.job_id, bindparam("b_job_ids", type_=ValueList())),
        system_jobs.c.status == JobStatus.IN_PROGRESS.value,
        system_jobs.c.claimed_by == bindparam("b_claimed_by"),
    )
    .order_by(system_jobs.c.job_id)
)


def record_outcomes(connection: Connection, outcomes: Sequence[ApprovalOutcome], claimed_by: str, now: datetime) -> None:
    """Succeeded or failed with its error, each job (still held by ``claimed_by``) in one statement."""
    update_rows(
        connection,
        system_jobs,
        [
            {
                "job_id": outcome.job_id,
                "claimed_by": claimed_by,
                "status": (JobStatus.SUCCEEDED if outcome.succeeded else JobStatus.FAILED).value,
                "error": outcome.error,
                "finished_at": now,
            }
            for outcome in outcomes
        ],
        key=("job_id", "claimed_by"),
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
