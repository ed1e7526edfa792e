"""Dataverse's part of the expense flow: expense records, their automated approval, actuals and their postings.

``msdyn_expenses`` writes expense records and queues one approval system job per new record.
``run_system_jobs`` runs the jobs: each approved record gets its actuals, which ``msdyn_actuals``
carries to finance. ``msdyn_actualpostings`` brings back how finance posted them.

Each handler applies its whole batch in a constant number of statements. The rows it emits are
written in their JSON form directly: their values were validated when they arrived (and kept in
columns of fixed scale since), and the receiving side validates every message it decodes.
"""

from __future__ import annotations

from typing import Any

from contracts.actuals import MSDYN_ACTUALS, RUN_SYSTEM_JOBS, ActualPostingsV1, RunSystemJobsV1
from contracts.expenses import ExpensesV1
from contracts.queues import DATAVERSE_SYSTEM_JOBS, table_map
from contracts.registry import Decoded, MessagePart, by_part
from contracts.wire import fixed_point
from shared.errors import refuse_if_any
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork, utcnow
from workers.dataverse import expense_repository, job_repository, repository
from workers.dataverse.domain.actuals import Actual
from workers.dataverse.domain.approvals import ApprovalOutcome, run_approval
from workers.dataverse.domain.system_jobs import approval_job_id

log = get_logger(__name__)


def apply_expenses(message: Decoded[ExpensesV1], uow: UnitOfWork) -> None:
    """msdyn_expenses: record the posted lines and queue one automated approval per new record.

    The jobs of each business document (each part of the message) keep its correlation id and
    are sent on in a part of their own, caused by that document's part.
    """
    legal_entity = message.envelope.legal_entity
    lines = message.payload.rows
    owners = expense_repository.expense_owners(uow.connection, (line.expense_id for line in lines))
    refuse_if_any(
        [
            f"rows.{index}: expense {line.expense_id} belongs to company {owners[line.expense_id]}, not {legal_entity}"
            for index, line in enumerate(lines)
            if owners.get(line.expense_id, legal_entity) != legal_entity
        ],
        "msdyn_expenses",
    )
    expense_repository.save_expenses(uow.connection, legal_entity, lines)
    documents = _rows_by_part(message)
    new_jobs = set(
        job_repository.create_approval_jobs(
            uow.connection,
            legal_entity,
            [(line.expense_id, part.correlation_id) for part, part_lines in documents for line in part_lines],
            utcnow(),
        )
    )
    for part, part_lines in documents:
        job_ids = [approval_job_id(line.expense_id) for line in part_lines]
        jobs = [{"job_id": job_id} for job_id in job_ids if job_id in new_jobs]
        if jobs:
            uow.emit(
                DATAVERSE_SYSTEM_JOBS,
                RUN_SYSTEM_JOBS.name,
                RUN_SYSTEM_JOBS.latest,
                {"rows": jobs},  # RunSystemJobsV1 in its JSON form
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
    named = message.payload.rows
    claimed = job_repository.claim_jobs(uow.connection, legal_entity, (row.job_id for row in named), runner, utcnow())
    if not claimed:
        log.info("no system job left to run", named=len(named))
        return
    jobs = job_repository.claimed_expenses(uow.connection, claimed, runner)
    projects = repository.projects_by_id(uow.connection, (job.project_id for job in jobs))
    categories = repository.company_expense_categories(uow.connection, legal_entity, (job.expense_category for job in jobs))
    outcomes = [run_approval(job.job_id, job, projects.get(job.project_id), categories) for job in jobs]
    new_actuals = [actual for outcome in outcomes for actual in outcome.actuals]
    expense_repository.save_actuals(uow.connection, new_actuals)
    expense_repository.mark_approved(uow.connection, [o.expense_id for o in outcomes if o.succeeded])
    job_repository.record_outcomes(uow.connection, outcomes, runner, utcnow())
    _log_failures(outcomes)
    part_of_job = {row.job_id: part for part, rows in _rows_by_part(message) for row in rows}
    part_of_expense = {outcome.expense_id: part_of_job[outcome.job_id] for outcome in outcomes}
    for part, actuals in by_part(new_actuals, lambda actual: part_of_expense[actual.expense_id]):
        uow.emit(
            table_map(MSDYN_ACTUALS.name).outbound,
            MSDYN_ACTUALS.name,
            MSDYN_ACTUALS.latest,
            {"rows": [_actual_message_row(actual) for actual in actuals]},
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


def _rows_by_part(message: Decoded[Any]) -> list[tuple[MessagePart, list[Any]]]:
    """Each part of the message (each business document) with its rows, in order."""
    rows = message.payload.rows
    return [(part, rows[part.start : part.stop]) for part in message.parts]


def _log_failures(outcomes: list[ApprovalOutcome]) -> None:
    for outcome in outcomes:
        if not outcome.succeeded:
            log.warning("automated approval failed", job_id=outcome.job_id, expense_id=outcome.expense_id, error=outcome.error)


#: How ``msdyn_actuals`` writes amounts and rates: the contract's own serializer.
_decimal_text = fixed_point.func


def _actual_message_row(actual: Actual) -> dict[str, Any]:
    """An actual as ``msdyn_actuals`` v1 carries it: an ``ActualV1`` in its JSON form, field for field."""
    return {
        "actual_id": actual.actual_id,
        "expense_id": actual.expense_id,
        "project_id": actual.project_id,
        "expense_category": actual.expense_category,
        "transaction_classification": int(actual.transaction_classification),
        "transaction_type": int(actual.transaction_type),
        "date": actual.date.isoformat(),
        "amount": _decimal_text(actual.amount),
        "currency": actual.currency,
        "accounting_amount": _decimal_text(actual.accounting_amount),
        "accounting_currency": actual.accounting_currency,
        "exchange_rate": _decimal_text(actual.exchange_rate),
        "skip_sync": actual.skip_sync,
    }
