"""Dataverse's part of the expense flow: expense records, their automated approval, actuals and their postings.

``msdyn_expenses`` writes expense records and queues one approval system job per new record.
``run_system_jobs`` runs the jobs: each approved record gets its actuals, which ``msdyn_actuals``
carries to finance. ``msdyn_actualpostings`` brings back how finance posted them.
"""

from __future__ import annotations

from contracts.actuals import (
    MSDYN_ACTUALS,
    RUN_SYSTEM_JOBS,
    ActualPostingsV1,
    ActualsV1,
    ActualV1,
    RunSystemJobsV1,
    SystemJobRefV1,
)
from contracts.expenses import ExpensesV1
from contracts.queues import DATAVERSE_SYSTEM_JOBS, table_map
from contracts.registry import Decoded, by_part
from shared.errors import refuse_if_any
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork, utcnow
from workers.dataverse import expense_repository, job_repository, repository
from workers.dataverse.domain.actuals import Actual
from workers.dataverse.domain.approvals import ApprovalOutcome, run_approval
from workers.dataverse.domain.expenses import ExpenseRecord
from workers.dataverse.domain.system_jobs import approval_job_id

log = get_logger(__name__)


def apply_expenses(message: Decoded[ExpensesV1], uow: UnitOfWork) -> None:
    """msdyn_expenses: record the posted lines and queue one automated approval per new record.

    The jobs of each business document (each part of the message) keep its correlation id and
    are sent on in a part of their own, caused by that document's part.
    """
    legal_entity = message.envelope.legal_entity
    records = [ExpenseRecord(legal_entity=legal_entity, **row.model_dump()) for row in message.payload.rows]
    owners = expense_repository.expense_owners(uow.connection, (record.expense_id for record in records))
    refuse_if_any(
        [
            f"rows.{index}: expense {record.expense_id} belongs to company {owners[record.expense_id]}, not {legal_entity}"
            for index, record in enumerate(records)
            if owners.get(record.expense_id, legal_entity) != legal_entity
        ],
        "msdyn_expenses",
    )
    expense_repository.save_expenses(uow.connection, records)
    part_of_job = {approval_job_id(record.expense_id): message.part_of(index) for index, record in enumerate(records)}
    job_ids = job_repository.create_approval_jobs(
        uow.connection,
        legal_entity,
        [(record.expense_id, message.part_of(index).correlation_id) for index, record in enumerate(records)],
        utcnow(),
    )
    for part, jobs in by_part(job_ids, part_of_job.__getitem__):
        uow.emit(
            DATAVERSE_SYSTEM_JOBS,
            RUN_SYSTEM_JOBS.name,
            RUN_SYSTEM_JOBS.latest,
            RunSystemJobsV1(rows=[SystemJobRefV1(job_id=job_id) for job_id in jobs]),
            correlation_id=part.correlation_id,
            legal_entity=legal_entity,
            cause=part,
        )


def run_system_jobs(message: Decoded[RunSystemJobsV1], uow: UnitOfWork) -> None:
    """Run the named approval jobs in this unit of work: each approved record's actuals are created
    and sent on, in one part per business document (each part of the message).

    The jobs are claimed in this transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): a job is
    run by exactly one message, and a failed attempt leaves it waiting for the retry, whatever
    message carries its part next.
    """
    legal_entity = message.envelope.legal_entity
    runner = str(message.envelope.message_id)
    named = [row.job_id for row in message.payload.rows]
    claimed = job_repository.claim_jobs(uow.connection, legal_entity, named, runner, utcnow())
    if not claimed:
        log.info("no system job left to run", named=len(named))
        return
    jobs = job_repository.claimed_expenses(uow.connection, claimed, runner)
    projects = repository.projects_by_id(uow.connection, (expense.project_id for expense in jobs.values()))
    categories = repository.company_expense_categories(
        uow.connection, legal_entity, (expense.expense_category for expense in jobs.values())
    )
    outcomes = [
        run_approval(job_id, expense, projects.get(expense.project_id), categories) for job_id, expense in jobs.items()
    ]
    new_actuals = [actual for outcome in outcomes for actual in outcome.actuals]
    expense_repository.save_actuals(uow.connection, new_actuals)
    expense_repository.mark_approved(uow.connection, [o.expense_id for o in outcomes if o.succeeded])
    job_repository.record_outcomes(uow.connection, outcomes, runner, utcnow())
    _log_failures(outcomes)
    part_of_job = {job_id: message.part_of(index) for index, job_id in enumerate(named)}
    job_of_expense = {expense.expense_id: job_id for job_id, expense in jobs.items()}
    for part, actuals in by_part(new_actuals, lambda actual: part_of_job[job_of_expense[actual.expense_id]]):
        uow.emit(
            table_map(MSDYN_ACTUALS.name).outbound,
            MSDYN_ACTUALS.name,
            MSDYN_ACTUALS.latest,
            ActualsV1(rows=[_actual_row(actual) for actual in actuals]),
            correlation_id=part.correlation_id,
            legal_entity=legal_entity,
            cause=part,
        )


def apply_actual_postings(message: Decoded[ActualPostingsV1], uow: UnitOfWork) -> None:
    """msdyn_actualpostings: voucher, posting date, accounting amount and rate onto each actual."""
    legal_entity = message.envelope.legal_entity
    postings = message.payload.rows
    known = expense_repository.known_actuals(uow.connection, legal_entity, (row.actual_id for row in postings))
    refuse_if_any(
        [
            f"rows.{index}: actual {row.actual_id} is not an actual of company {legal_entity}"
            for index, row in enumerate(postings)
            if row.actual_id not in known
        ],
        "msdyn_actualpostings",
    )
    expense_repository.record_postings(uow.connection, legal_entity, postings)


def _log_failures(outcomes: list[ApprovalOutcome]) -> None:
    for outcome in outcomes:
        if not outcome.succeeded:
            log.warning("automated approval failed", job_id=outcome.job_id, expense_id=outcome.expense_id, error=outcome.error)


def _actual_row(actual: Actual) -> ActualV1:
    return ActualV1(
        actual_id=actual.actual_id,
        expense_id=actual.expense_id,
        project_id=actual.project_id,
        expense_category=actual.expense_category,
        transaction_classification=actual.transaction_classification,
        transaction_type=actual.transaction_type,
        date=actual.date,
        amount=actual.amount,
        currency=actual.currency,
        accounting_amount=actual.accounting_amount,
        accounting_currency=actual.accounting_currency,
        exchange_rate=actual.exchange_rate,
        skip_sync=actual.skip_sync,
    )
