"""``dualwrite jobs``: Dataverse's automated-approval system jobs, and ``jobs retry`` for failed ones.

Reads the Dataverse database named by the settings (``DUALWRITE_DATAVERSE_DB_URL``, or the
SQLite file under ``DUALWRITE_DATA_DIR``), as an operator would open Advanced settings > System >
System jobs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.signatures import key_ring
from shared.broker import BROKER_UNAVAILABLE, make_broker
from shared.logging import configure_logging
from shared.redaction import redact_text, redact_url
from shared.settings import Settings
from shared.side_database import SideDatabase
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table
from workers.dataverse import job_repository
from workers.dataverse.domain.system_jobs import JobStatus
from workers.dataverse.job_repository import JobView
from workers.dataverse.job_retry import RetryResult, retry_jobs
from workers.dataverse.tables import messaging, metadata, system_jobs

STATUSES = [status.value for status in JobStatus]


class DataverseDatabaseUnavailable(Exception):
    """Raised when the Dataverse database is missing, unreachable or has no system jobs table."""


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "jobs",
        help="list Dataverse's automated-approval system jobs, or retry failed ones",
        description="Without an action: the system jobs, oldest first. `jobs retry` runs failed jobs again.",
    )
    parser.add_argument("--status", choices=STATUSES, help="only jobs with this status")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    retry = actions.add_parser(
        "retry",
        help="reset failed jobs to waiting and run them again",
        description="Failed jobs go back to waiting (attempts kept, error cleared) and a run_system_jobs "
        "message is sent through the Dataverse outbox. Fix the cause first (reopen the project...).",
    )
    retry.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to retry")
    retry.add_argument("--failed", action="store_true", help="retry every failed job")
    retry.add_argument("--json", action="store_true", help="print JSON")
    retry.set_defaults(run=run_retry)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    status = JobStatus(args.status) if args.status else None
    try:
        database = open_dataverse_database(settings)
    except DataverseDatabaseUnavailable as error:
        fail(str(error))
        return ExitCode.UNAVAILABLE
    try:
        with database.engine.connect() as connection:
            jobs = job_repository.list_jobs(connection, status)
    except DBAPIError as error:
        fail(f"Dataverse database unavailable: {error.orig}")
        return ExitCode.UNAVAILABLE
    finally:
        database.dispose()
    now = datetime.now(UTC)
    if args.json:
        print_json([job_document(job, now) for job in jobs])
        return ExitCode.OK
    print_table(
        ["JOB", "LEGAL ENTITY", "EXPENSE", "STATUS", "ATTEMPTS", "AGE", "ERROR"],
        [[j.job_id, j.legal_entity, j.expense_id, j.status, j.attempts, age(j.created_at, now), j.error] for j in jobs],
    )
    return ExitCode.OK


def run_retry(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.job_ids) == bool(args.failed):
        fail("name the jobs to retry, or give --failed for every failed job (not both)")
        return ExitCode.USAGE
    if settings.embedded_broker:
        fail(
            "the embedded broker lives inside one process (dualwrite demo); "
            "set DUALWRITE_BROKER_URL to a redis:// or amqp:// URL to retry jobs"
        )
        return ExitCode.CONFIGURATION
    configure_logging(settings.log_level, settings.log_format)  # on stderr: stdout is the result
    job_ids = None if args.failed else [job_id.upper() for job_id in args.job_ids]
    try:
        database = open_dataverse_database(settings)
    except DataverseDatabaseUnavailable as error:
        fail(str(error))
        return ExitCode.UNAVAILABLE
    broker = make_broker(settings)
    try:
        result = retry_jobs(database, broker, job_ids, ring=key_ring(settings))
    except DBAPIError as error:
        fail(f"Dataverse database unavailable: {error.orig}; nothing was reset")
        return ExitCode.UNAVAILABLE
    except BROKER_UNAVAILABLE as error:
        fail(
            f"broker unavailable at {redact_url(settings.broker_url)}: {redact_text(error)}; the jobs are reset and their "
            "run_system_jobs message waits in the Dataverse outbox for a Dataverse worker to send it"
        )
        return ExitCode.UNAVAILABLE
    finally:
        broker.close()
        database.dispose()
    return _report_retry(result, args.json)


def _report_retry(result: RetryResult, as_json: bool) -> int:
    if as_json:
        print_json(
            {
                "retried": [job.job_id for job in result.retried],
                "not_failed": result.not_failed,
                "unknown": result.unknown,
                "messages": result.messages,
            }
        )
    if result.unknown:
        if not as_json:
            fail(f"no system job {', '.join(result.unknown)}; nothing was reset")
        return ExitCode.INVALID_INPUT
    if not as_json:
        for job_id, status in result.not_failed.items():
            fail(f"job {job_id} is {status}, not failed: left as it is")
        print(f"{len(result.retried)} job(s) back to waiting, sent to run in {len(result.messages)} message(s)")
        for job in result.retried:
            print(f"  {job.job_id}  {job.legal_entity}  {job.expense_id}  was: {job.error}")
    return ExitCode.FAILED if result.not_failed else ExitCode.OK


def open_dataverse_database(settings: Settings) -> SideDatabase:
    """The Dataverse database of the settings, checked to hold the system jobs table."""
    url = settings.database_url("dataverse")
    shown = make_url(url).render_as_string(hide_password=True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise DataverseDatabaseUnavailable(
            f"no Dataverse database at {shown}: set DUALWRITE_DATA_DIR to the folder of the embedded "
            "SQLite files, or DUALWRITE_DATAVERSE_DB_URL"
        )
    database = SideDatabase.open("dataverse", url, metadata, messaging, pool_size=2)
    try:
        with database.engine.connect() as connection:
            has_jobs = inspect(connection).has_table(system_jobs.name)
    except DBAPIError as error:
        database.dispose()
        raise DataverseDatabaseUnavailable(f"Dataverse database unavailable at {shown}: {error.orig}") from None
    if not has_jobs:
        database.dispose()
        raise DataverseDatabaseUnavailable(
            f"the Dataverse database at {shown} has no system jobs table: has a Dataverse worker run on it?"
        )
    return database


def job_document(job: JobView, now: datetime) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "legal_entity": job.legal_entity,
        "expense_id": job.expense_id,
        "correlation_id": job.correlation_id,
        "status": job.status,
        "attempts": job.attempts,
        "age_seconds": round((now - _aware(job.created_at)).total_seconds(), 1),
        "error": job.error,
        "claimed_by": job.claimed_by,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def age(created_at: datetime, now: datetime) -> str:
    """How long ago, in the largest whole unit: 42s, 5m, 3h, 2d."""
    elapsed = max(now - _aware(created_at), timedelta(0))
    seconds = int(elapsed.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; everything we store is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    return _aware(moment).isoformat() if moment is not None else None
