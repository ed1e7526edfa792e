"""Where a document is, in words: what was refused, what waits, and each expense line's stage.

Plain functions over what :mod:`workers.operations.hops` and :mod:`workers.operations.expense_trail`
read; they decide nothing, they only say what the rows mean and what an operator can do next.
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.operations.expense_trail import LineState, ReportTrail
from workers.operations.hops import APPLIED, DEAD_LETTERED, IN_OUTBOX, ON_QUEUE, Hop

NEXT_STEP = {
    "draft": "created, not yet submitted",
    "submitted": "submitted, waiting for the project managers' approval",
    "approved": "approved, not yet posted",
}


def unresolved_refusals(hops: Iterable[Hop]) -> list[Hop]:
    """Dead letters whose message was not applied afterwards (by a replay)."""
    hops = list(hops)
    applied = {hop.message_id for hop in hops if hop.result == APPLIED}
    return [hop for hop in hops if hop.result == DEAD_LETTERED and hop.message_id not in applied]


def message_summary(hops: list[Hop]) -> list[str]:
    """Refusals and waiting messages, or the last hop when there are none."""
    said = [f"dead letter on {hop.queue} ({hop.side}), not replayed: {hop.detail}" for hop in unresolved_refusals(hops)]
    said += [f"{hop.result}: {hop.contract} for {hop.queue} ({hop.detail})" for hop in hops if hop.result in (IN_OUTBOX, ON_QUEUE)]
    if not said and hops:
        last = hops[-1]
        said.append(f"nothing waits: the last hop was {last.contract or last.queue} on {last.queue} ({last.side}), {last.result}")
    return said


def line_stage(report_status: str, line: LineState) -> tuple[str, bool]:
    """Where one expense line is, and whether it went all the way."""
    if line.project_id is None:
        return "no project: stays in finance (ordinary expense account)", report_status == "posted"
    if report_status != "posted":
        return f"report {report_status}: the line goes to Dataverse once the report is posted", False
    if not line.expense_record:
        return "posted; waiting for msdyn_expenses to write the expense record in Dataverse", False
    if line.job_status in (None, "waiting", "in_progress"):
        return f"automated approval {line.job_status or 'not yet created'}", False
    if line.job_status == "failed":
        return f"automated approval failed: {line.job_error}; fix the cause, then `dualwrite jobs retry {line.job_id}`", False
    return _actuals_stage(line)


def _actuals_stage(line: LineState) -> tuple[str, bool]:
    sent = [actual for actual in line.actuals if not actual.skip_sync]
    if not sent:
        return "approved; no actual to send to finance", True
    if any(actual.staging is None for actual in sent):
        return "approved; actuals not yet staged in finance (msdyn_actuals)", False
    if any(actual.staging == "staged" for actual in sent):
        return "actuals staged in finance, waiting for Import from staging", False
    open_journals = sorted({a.journal_id for a in sent if a.journal_status != "posted"})
    if open_journals:
        return f"in integration journal {', '.join(open_journals)}, not yet posted", False
    vouchers = ", ".join(sorted({a.voucher for a in sent if a.voucher}))
    if any(actual.dataverse_posting != "posted" for actual in sent):
        return f"posted to project cost (voucher {vouchers}); posting result not yet back in Dataverse", False
    return f"posted to project cost (voucher {vouchers}); Dataverse has the posting result", True


def describe_lines(trail: ReportTrail) -> None:
    for line in trail.lines:
        line.stage, line.done = line_stage(trail.status, line)


def report_summary(trail: ReportTrail, hops: list[Hop]) -> list[str]:
    """The report's state in a few sentences: refusals and waits first, then the lines not done."""
    said = [s for s in message_summary(hops) if not s.startswith("nothing waits")]
    if trail.status in NEXT_STEP:
        return [*said, f"report {trail.report.name} is {NEXT_STEP[trail.status]}"]
    pending = [line for line in trail.lines if not line.done]
    said += [f"line {line.line_number} ({line.expense_id}): {line.stage}" for line in pending]
    if not pending:
        said.append(f"complete: report {trail.report.name} posted (voucher {trail.voucher}); every project line is on "
                    "project cost and Dataverse has its posting results")
    return said
