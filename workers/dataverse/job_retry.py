"""Retrying failed system jobs: back to waiting, and a run_system_jobs message to run them again.

The message goes through the Dataverse outbox like any other, written in the same transaction as
the reset, then relayed at once; a crash in between leaves it for the outbox sweeper.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import dramatiq

from contracts.actuals import RUN_SYSTEM_JOBS, RunSystemJobsV1, SystemJobRefV1
from contracts.batch import MAX_ROWS
from contracts.envelope import Envelope, Side
from contracts.queues import DATAVERSE_SYSTEM_JOBS
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.keys import KeyRing
from shared.publisher import Publisher
from shared.signatures import Signer
from shared.side_database import SideDatabase
from shared.unit_of_work import UnitOfWork
from workers.dataverse import job_repository
from workers.dataverse.job_repository import JobView

log = get_logger(__name__)


@dataclass(frozen=True)
class RetryResult:
    """What a retry did: the jobs it reset, the named jobs it left alone, and why."""

    retried: list[JobView] = field(default_factory=list)
    #: Named jobs that are not failed (job id -> status): nothing to retry.
    not_failed: dict[str, str] = field(default_factory=dict)
    #: Named jobs that do not exist; when there is any, nothing at all was reset.
    unknown: list[str] = field(default_factory=list)
    #: Ids of the run_system_jobs messages sent.
    messages: list[str] = field(default_factory=list)


def retry_jobs(
    database: SideDatabase, broker: dramatiq.Broker, job_ids: Sequence[str] | None = None, *, ring: KeyRing | None = None
) -> RetryResult:
    """Reset the named failed jobs (every failed job when ``job_ids`` is None) and send them to run.

    Attempts are kept and the error cleared. One run_system_jobs message goes out per legal entity
    and business document (its correlation id), so the retry joins the document's trace. The
    messages are Dataverse's: sent from here when ``ring`` holds Dataverse's signing key, otherwise
    by the Dataverse worker's outbox sweeper, seconds later.
    """
    with UnitOfWork(database, Side.DATAVERSE, cause=None) as uow:
        named = job_repository.jobs_by_id(uow.connection, job_ids) if job_ids is not None else {}
        unknown = [job_id for job_id in dict.fromkeys(job_ids or ()) if job_id not in named]
        if unknown:
            return RetryResult(unknown=unknown)
        retried = job_repository.reset_failed_jobs(uow.connection, job_ids)
        reset = {job.job_id for job in retried}
        not_failed = {job_id: job.status for job_id, job in named.items() if job_id not in reset}
        messages = [str(_send_to_run(uow, batch).message_id) for batch in _batches(retried)]
        uow.commit()
    if ring is not None and ring.can_sign_as(Side.DATAVERSE.value):
        Outbox(database, Publisher(broker, Signer(ring, Side.DATAVERSE.value)).send_raw).relay()
    elif messages:
        log.info("run_system_jobs left to the Dataverse worker's outbox sweeper (no Dataverse signing key here)")
    log.info("system jobs retried", jobs=len(retried), messages=len(messages))
    return RetryResult(retried=retried, not_failed=not_failed, messages=messages)


def _batches(jobs: list[JobView]) -> list[list[JobView]]:
    """Jobs grouped by legal entity and correlation id, at most one message's worth per group."""
    groups: dict[tuple[str, str], list[JobView]] = defaultdict(list)
    for job in jobs:
        groups[(job.legal_entity, job.correlation_id)].append(job)
    return [group[start : start + MAX_ROWS] for group in groups.values() for start in range(0, len(group), MAX_ROWS)]


def _send_to_run(uow: UnitOfWork, jobs: list[JobView]) -> Envelope:
    return uow.emit(
        DATAVERSE_SYSTEM_JOBS,
        RUN_SYSTEM_JOBS.name,
        RUN_SYSTEM_JOBS.latest,
        RunSystemJobsV1(rows=[SystemJobRefV1(job_id=job.job_id) for job in jobs]),
        correlation_id=jobs[0].correlation_id,
        legal_entity=jobs[0].legal_entity,
    )
