"""System jobs: the automated approval that writing an expense record starts, with a visible status."""

from __future__ import annotations

import hashlib
from enum import StrEnum


class JobStatus(StrEnum):
    """A system job's status, as an operator reads it (``dualwrite jobs``)."""

    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def approval_job_id(expense_id: str) -> str:
    """The id of an expense record's automated-approval job, the same on every delivery.

    A hash keeps it short (expense ids run to 60 characters) and the same for every delivery; the job
    table's unique expense id is what guarantees one job per record.
    """
    digest = hashlib.sha256(expense_id.encode("utf-8")).hexdigest()[:20].upper()
    return f"JOB-{digest}"
