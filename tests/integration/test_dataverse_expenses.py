"""The Dataverse side of the expense flow, on each backend: expense records, approval jobs, actuals.

Dataverse runs with the bridge, without finance: the tests deliver ``msdyn_expenses`` (and
``msdyn_expensecategories``, ``msdyn_actualpostings``) on the bridge-to-Dataverse queues as the
bridge would, set up projects through the ordinary commands, and read the result in the
Dataverse database and in what the bridge received.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from contracts.catalog import default_registry
from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import DATAVERSE_SYSTEM_JOBS, table_map
from shared.publisher import Publisher
from shared.settings import Settings
from shared.signatures import Signer, key_ring
from shared.side_database import SideDatabase
from shared.unit_of_work import utcnow
from shared.waiting import wait_until
from tests.in_process_cli import run_dualwrite
from tests.integration.support import load_test_companies
from workers.cli.exit_codes import ExitCode
from workers.dataverse import expense_handlers, tables
from workers.dataverse.domain.approvals import run_approval
from workers.dataverse.domain.system_jobs import approval_job_id
from workers.dataverse.job_repository import claim_jobs, create_approval_jobs
from workers.dataverse.job_retry import retry_jobs
from workers.runtime import Runtime
from workers.upstream import publish

WAIT = 20.0
COST, UNBILLED_SALES, EXPENSE = 192350000, 192350005, 192350001


class Dataverse:
    """The Dataverse worker and the bridge, running; fed as upstream and the bridge feed them."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.registry = default_registry()

    @property
    def database(self) -> SideDatabase:
        return self.runtime.side(Side.DATAVERSE).database

    @property
    def engine(self) -> Engine:
        return self.database.engine

    # -- feeding it ------------------------------------------------------------------------------

    def command(self, contract: str, rows: list[dict[str, Any]], legal_entity: str) -> Envelope:
        envelope = publish(
            self.runtime.broker, self.registry, contract, {"rows": rows}, ring=key_ring(self.runtime.settings),
            correlation_id=f"test:{contract}:{uuid.uuid4()}", legal_entity=legal_entity,
        )
        self.wait_applied(envelope)
        return envelope

    def deliver(
        self, map_name: str, rows: list[dict[str, Any]], legal_entity: str, *,
        correlation_id: str, message_id: uuid.UUID | None = None,
    ) -> Envelope:
        """Put a map's rows on its bridge-to-Dataverse queue, as the bridge does."""
        contract = self.registry.get(map_name)
        envelope = new_envelope(
            contract=map_name, version=contract.latest, source=Side.BRIDGE, payload={"rows": rows},
            correlation_id=correlation_id, legal_entity=legal_entity, message_id=message_id,
        )
        self.registry.decode_envelope(envelope)  # the test's own data must be valid
        Publisher(self.runtime.broker, Signer(key_ring(self.runtime.settings), "bridge")).send(table_map(map_name).inbound, envelope)
        return envelope

    # -- waiting on conditions -------------------------------------------------------------------

    def wait_applied(self, envelope: Envelope) -> None:
        inbox = self.database.messaging.inbox
        wait_until(
            lambda: self.count(inbox, inbox.c.message_id == str(envelope.message_id)),
            timeout=WAIT, what=f"{envelope.contract} applied by Dataverse",
        )

    def wait_jobs_finished(self, count: int) -> list[Any]:
        """Wait until ``count`` jobs exist and none is waiting or in progress; returns them."""

        def finished() -> list[Any]:
            jobs = self.jobs()
            return jobs if len(jobs) == count and all(j.status in ("succeeded", "failed") for j in jobs) else []

        return wait_until(finished, timeout=WAIT, what=f"{count} system jobs finished")

    def wait_drained(self, *queue_names: str) -> None:
        """Wait until the queues are empty and the Dataverse outbox has sent everything."""
        for name in queue_names:
            self.runtime.broker.join(name, timeout=int(WAIT * 1000))
        wait_until(lambda: self.runtime.side(Side.DATAVERSE).relay.backlog() == 0, timeout=WAIT, what="outbox sent")

    # -- reading it ------------------------------------------------------------------------------

    def rows(self, statement: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(statement))

    def count(self, table: Any, *criteria: Any) -> int:
        with self.engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(table).where(*criteria)) or 0

    def jobs(self) -> list[Any]:
        return self.rows(select(tables.system_jobs).order_by(tables.system_jobs.c.expense_id))

    def job(self, expense_id: str) -> Any:
        return self.rows(select(tables.system_jobs).where(tables.system_jobs.c.expense_id == expense_id))[0]

    def actuals(self, *criteria: Any) -> list[Any]:
        return self.rows(select(tables.actuals).where(*criteria).order_by(tables.actuals.c.actual_id))

    def approval_status(self) -> dict[str, str]:
        return dict(self.rows(select(tables.expenses.c.expense_id, tables.expenses.c.approval_status)))

    def outbox_payloads(self, contract: str) -> list[dict[str, Any]]:
        outbox = self.database.messaging.outbox
        bodies = self.rows(select(outbox.c.body).where(outbox.c.contract == contract).order_by(outbox.c.id))
        return [json.loads(body) for (body,) in bodies]

    def bridge_inbox(self, contract: str) -> list[Any]:
        bridge = self.runtime.side(Side.BRIDGE).database
        inbox = bridge.messaging.inbox
        with bridge.engine.connect() as connection:
            return list(connection.execute(select(inbox).where(inbox.c.contract == contract)))

    def dead_letters(self) -> list[str]:
        dead = self.database.messaging.dead_letters
        return [f"{row.error_type}: {row.error}" for row in self.rows(select(dead))]


@pytest.fixture
def dataverse(backend) -> Iterator[Dataverse]:
    """Dataverse and the bridge on the test's backend; finance is not running."""
    runtime = Runtime(backend.settings, sides=(Side.DATAVERSE, Side.BRIDGE))
    try:
        backend.fresh_tables(runtime)
        load_test_companies(runtime)  # Dataverse's companies: it refuses any other
        runtime.start()
        yield Dataverse(runtime)
    finally:
        runtime.stop()


# -- the state a scenario starts from -------------------------------------------------------------


def given_expense_categories(dataverse: Dataverse) -> None:
    """USPM has HOTEL and AIRFARE; DEMF has HOTEL and RAIL (as msdyn_expensecategories brings them)."""
    for legal_entity, codes in {"USPM": ["HOTEL", "AIRFARE"], "DEMF": ["HOTEL", "RAIL"]}.items():
        envelope = dataverse.deliver(
            "msdyn_expensecategories",
            [{"expense_category": c, "name": c.title(), "transaction_category": c, "expense_type": "other"} for c in codes],
            legal_entity, correlation_id=f"expense-categories:{legal_entity}",
        )
        dataverse.wait_applied(envelope)


def given_projects(dataverse: Dataverse) -> None:
    """PRJ-US-1 (billable) and PRJ-US-2 (not billable) of USPM; PRJ-DE-1 (billable) of DEMF."""
    dataverse.command("create_projects", [
        {"project_id": "PRJ-US-1", "name": "Contoso rollout", "project_manager": "maria", "billable": True},
        {"project_id": "PRJ-US-2", "name": "Internal audit", "project_manager": "maria", "billable": False},
    ], "USPM")
    dataverse.command("create_projects", [
        {"project_id": "PRJ-DE-1", "name": "Fabrikam audit", "project_manager": "jonas", "billable": True},
    ], "DEMF")


def expense_line(
    report_id: str, line: int, project_id: str, category: str, *, paid: str, currency: str,
    cost: str, accounting_currency: str, cost_accounting: str, rate: str,
) -> dict[str, Any]:
    return {
        "expense_id": f"{report_id}-{line}", "report_id": report_id, "line_number": line,
        "project_id": project_id, "expense_category": category, "worker": "maria", "date": "2026-03-02",
        "amount": paid, "currency": currency, "project_cost": cost, "accounting_currency": accounting_currency,
        "project_cost_accounting": cost_accounting, "exchange_rate": rate, "voucher": f"EXV-{report_id}",
    }


#: A USPM report: a hotel night with non-recoverable tax on a billable project, and a flight in
#: EUR on a non-billable project (posted in USD at 1.0837).
USPM_REPORT = [
    expense_line("EXP-US-1", 1, "PRJ-US-1", "HOTEL", paid="254.80", currency="USD", cost="254.80",
                 accounting_currency="USD", cost_accounting="254.80", rate="1"),
    expense_line("EXP-US-1", 2, "PRJ-US-2", "AIRFARE", paid="499.99", currency="EUR", cost="499.99",
                 accounting_currency="USD", cost_accounting="541.84", rate="1.0837"),
]
#: A DEMF report: a train ticket with 19 % recoverable VAT on a billable project.
DEMF_REPORT = [
    expense_line("EXP-DE-1", 1, "PRJ-DE-1", "RAIL", paid="119.00", currency="EUR", cost="100.00",
                 accounting_currency="EUR", cost_accounting="100.00", rate="1"),
]


def actual_facts(actual: Any) -> tuple[Any, ...]:
    return (
        actual.actual_id, actual.legal_entity, actual.transaction_classification, actual.transaction_type,
        actual.amount, actual.currency, actual.accounting_amount, actual.accounting_currency, actual.exchange_rate,
    )


# -- scenarios ------------------------------------------------------------------------------------


def test_posted_expense_lines_are_approved_into_actuals_to_the_cent(dataverse: Dataverse) -> None:
    # Given the companies' expense categories and projects
    given_expense_categories(dataverse)
    given_projects(dataverse)

    # When msdyn_expenses brings a posted report of each company
    us = dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    de = dataverse.deliver("msdyn_expenses", DEMF_REPORT, "DEMF", correlation_id="expense-report:EXP-DE-1")
    jobs = dataverse.wait_jobs_finished(3)

    # Then each line is an expense record, approved by a job that succeeded at the first attempt
    assert dataverse.approval_status() == {"EXP-US-1-1": "approved", "EXP-US-1-2": "approved", "EXP-DE-1-1": "approved"}
    assert [(j.job_id, j.legal_entity, j.status, j.attempts, j.error) for j in jobs] == [
        (approval_job_id("EXP-DE-1-1"), "DEMF", "succeeded", 1, None),
        (approval_job_id("EXP-US-1-1"), "USPM", "succeeded", 1, None),
        (approval_job_id("EXP-US-1-2"), "USPM", "succeeded", 1, None),
    ]
    assert all(j.started_at is not None and j.finished_at >= j.started_at for j in jobs)

    # And the actuals: a cost actual per line, an unbilled sales actual for billable projects, at cost
    assert [actual_facts(a) for a in dataverse.actuals()] == [
        ("EXP-DE-1-1-COST", "DEMF", EXPENSE, COST, Decimal("100.00"), "EUR", Decimal("100.00"), "EUR", Decimal("1.00000000")),
        ("EXP-DE-1-1-SALES", "DEMF", EXPENSE, UNBILLED_SALES, Decimal("100.00"), "EUR", Decimal("100.00"), "EUR", Decimal("1.00000000")),
        ("EXP-US-1-1-COST", "USPM", EXPENSE, COST, Decimal("254.80"), "USD", Decimal("254.80"), "USD", Decimal("1.00000000")),
        ("EXP-US-1-1-SALES", "USPM", EXPENSE, UNBILLED_SALES, Decimal("254.80"), "USD", Decimal("254.80"), "USD", Decimal("1.00000000")),
        ("EXP-US-1-2-COST", "USPM", EXPENSE, COST, Decimal("499.99"), "EUR", Decimal("541.84"), "USD", Decimal("1.08370000")),
    ]
    uspm_cost = [a.accounting_amount for a in dataverse.actuals() if a.legal_entity == "USPM" and a.transaction_type == COST]
    assert sum(uspm_cost) == Decimal("796.64")
    assert {a.posting_status for a in dataverse.actuals()} == {"unposted"}

    # And one run_system_jobs per report, one msdyn_actuals per company, carried by the bridge
    runs = dataverse.outbox_payloads("run_system_jobs")
    assert sorted(len(run["payload"]["rows"]) for run in runs) == [1, 2]
    sent = {m["legal_entity"]: m for m in dataverse.outbox_payloads("msdyn_actuals")}
    assert sorted(sent) == ["DEMF", "USPM"]
    assert sent["USPM"]["correlation_id"] == "expense-report:EXP-US-1"
    assert sorted(row["actual_id"] for row in sent["USPM"]["payload"]["rows"]) == [
        "EXP-US-1-1-COST", "EXP-US-1-1-SALES", "EXP-US-1-2-COST"
    ]
    foreign = next(r for r in sent["USPM"]["payload"]["rows"] if r["actual_id"] == "EXP-US-1-2-COST")
    assert (foreign["amount"], foreign["accounting_amount"], foreign["exchange_rate"]) == ("499.99", "541.84", "1.08370000")
    assert foreign["transaction_classification"] == EXPENSE and foreign["transaction_type"] == COST
    wait_until(lambda: len(dataverse.bridge_inbox("msdyn_actuals")) == 2, timeout=WAIT, what="bridge carried msdyn_actuals")
    assert sorted(row.rows for row in dataverse.bridge_inbox("msdyn_actuals")) == [2, 3]
    assert {row.correlation_id for row in dataverse.bridge_inbox("msdyn_actuals")} == {us.correlation_id, de.correlation_id}
    assert dataverse.dead_letters() == []


def test_projects_reach_finance_with_their_status_through_msdyn_projects(dataverse: Dataverse) -> None:
    # Given two USPM projects and one DEMF project
    given_projects(dataverse)

    # When PRJ-US-2 is closed, then created again (same id, new name)
    dataverse.command("set_project_status", [{"project_id": "PRJ-US-2", "status": "closed"}], "USPM")
    dataverse.command("create_projects", [
        {"project_id": "PRJ-US-2", "name": "Internal audit 2026", "project_manager": "maria", "billable": False},
    ], "USPM")

    # Then it is still closed, and every change went to finance as msdyn_projects, status included
    project = dataverse.rows(select(tables.projects).where(tables.projects.c.project_id == "PRJ-US-2"))[0]
    assert (project.name, project.status) == ("Internal audit 2026", "closed")
    sent = [(m["legal_entity"], row["project_id"], row["status"], row["billable"], row["project_manager"])
            for m in dataverse.outbox_payloads("msdyn_projects") for row in m["payload"]["rows"]]
    assert sent == [
        ("USPM", "PRJ-US-1", "active", True, "maria"),
        ("USPM", "PRJ-US-2", "active", False, "maria"),
        ("DEMF", "PRJ-DE-1", "active", True, "jonas"),
        ("USPM", "PRJ-US-2", "closed", False, "maria"),
        ("USPM", "PRJ-US-2", "closed", False, "maria"),
    ]
    wait_until(lambda: len(dataverse.bridge_inbox("msdyn_projects")) == 4, timeout=WAIT, what="bridge carried msdyn_projects")

    # And another company cannot close a USPM project: refused with its reason, nothing changed
    publish(
        dataverse.runtime.broker, dataverse.registry, "set_project_status",
        {"rows": [{"project_id": "PRJ-US-1", "status": "closed"}]}, ring=key_ring(dataverse.runtime.settings),
        correlation_id="close:wrong-company", legal_entity="DEMF",
    )
    wait_until(dataverse.dead_letters, timeout=WAIT, what="refusal recorded")
    assert dataverse.dead_letters() == [
        "BusinessRuleViolation: set_project_status refused, nothing written: "
        "rows.0: project 'PRJ-US-1' is owned by company USPM, not DEMF"
    ]
    assert dataverse.rows(select(tables.projects.c.status).where(tables.projects.c.project_id == "PRJ-US-1")) == [("active",)]


def test_a_closed_project_fails_the_approval_until_reopened_and_retried(dataverse: Dataverse) -> None:
    # Given PRJ-US-2 was closed
    given_expense_categories(dataverse)
    given_projects(dataverse)
    dataverse.command("set_project_status", [{"project_id": "PRJ-US-2", "status": "closed"}], "USPM")

    # When a line on it arrives (beside a line on the open PRJ-US-1)
    dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    dataverse.wait_jobs_finished(2)

    # Then its job failed with the reason, and nothing else was written for it
    failed = dataverse.job("EXP-US-1-2")
    assert (failed.status, failed.error, failed.attempts) == ("failed", "project PRJ-US-2 is closed", 1)
    assert dataverse.job("EXP-US-1-1").status == "succeeded"
    assert dataverse.approval_status() == {"EXP-US-1-1": "approved", "EXP-US-1-2": "pending"}
    assert dataverse.actuals(tables.actuals.c.expense_id == "EXP-US-1-2") == []
    assert [r["actual_id"] for m in dataverse.outbox_payloads("msdyn_actuals") for r in m["payload"]["rows"]] == [
        "EXP-US-1-1-COST", "EXP-US-1-1-SALES"
    ]
    assert dataverse.dead_letters() == []  # a failed job is a business outcome, not a dead message

    # When the project is reopened and an operator retries the failed job
    dataverse.command("set_project_status", [{"project_id": "PRJ-US-2", "status": "active"}], "USPM")
    result = retry_jobs(dataverse.database, dataverse.runtime.broker, [failed.job_id])
    assert [job.job_id for job in result.retried] == [failed.job_id] and len(result.messages) == 1
    wait_until(lambda: dataverse.job("EXP-US-1-2").status == "succeeded", timeout=WAIT, what="retried job succeeded")

    # Then it succeeded at its second attempt and the cost actual exists once (not billable: no sales)
    retried = dataverse.job("EXP-US-1-2")
    assert (retried.status, retried.error, retried.attempts) == ("succeeded", None, 2)
    assert [actual_facts(a) for a in dataverse.actuals(tables.actuals.c.expense_id == "EXP-US-1-2")] == [
        ("EXP-US-1-2-COST", "USPM", EXPENSE, COST, Decimal("499.99"), "EUR", Decimal("541.84"), "USD", Decimal("1.08370000")),
    ]
    assert dataverse.approval_status()["EXP-US-1-2"] == "approved"
    retry_run = dataverse.outbox_payloads("run_system_jobs")[-1]
    assert (retry_run["correlation_id"], retry_run["legal_entity"]) == ("expense-report:EXP-US-1", "USPM")

    # And retrying it again changes nothing: it is not failed any more
    again = retry_jobs(dataverse.database, dataverse.runtime.broker, [failed.job_id])
    assert (again.retried, again.not_failed, again.messages) == ([], {failed.job_id: "succeeded"}, [])
    assert retry_jobs(dataverse.database, dataverse.runtime.broker, ["JOB-NOPE"]).unknown == ["JOB-NOPE"]
    dataverse.wait_drained(DATAVERSE_SYSTEM_JOBS.name)
    assert dataverse.count(tables.actuals) == 3
    assert len(dataverse.outbox_payloads("msdyn_actuals")) == 2


def test_jobs_go_from_waiting_to_their_outcome_in_one_commit(dataverse: Dataverse, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an approval that notes what an operator would see while it runs
    seen: list[tuple[str, str | None]] = []

    def watched_approval(job_id: str, *args: Any) -> Any:
        seen.append(job_as_an_operator_reads_it(dataverse, job_id))
        return run_approval(job_id, *args)

    monkeypatch.setattr(expense_handlers, "run_approval", watched_approval)
    given_expense_categories(dataverse)
    given_projects(dataverse)

    # When a report's jobs run
    dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    jobs = dataverse.wait_jobs_finished(2)

    # Then while they ran they still read waiting: the claim commits with the outcome, so a run
    # that dies leaves them waiting for whichever message carries their part next (never stuck
    # in progress for a message that will not come back); and the run_system_jobs message ran them
    runner = dataverse.outbox_payloads("run_system_jobs")[0]["message_id"]
    assert seen == [("waiting", None), ("waiting", None)]
    assert {(job.status, job.claimed_by) for job in jobs} == {("succeeded", runner)}


def job_as_an_operator_reads_it(dataverse: Dataverse, job_id: str) -> tuple[str, str | None]:
    """(status, claimed_by) through a connection of its own, without waiting on the writer."""
    if dataverse.engine.dialect.name == "sqlite":
        # The engine begins every transaction IMMEDIATE (it would wait for the writer); a plain
        # WAL reader sees the last commit at once.
        with closing(sqlite3.connect(dataverse.engine.url.database)) as reader:
            return reader.execute("SELECT status, claimed_by FROM system_jobs WHERE job_id = ?", (job_id,)).fetchone()
    with dataverse.engine.connect() as operator:
        jobs = tables.system_jobs
        return tuple(operator.execute(select(jobs.c.status, jobs.c.claimed_by).where(jobs.c.job_id == job_id)).one())


def test_a_redelivered_msdyn_expenses_creates_nothing_twice(dataverse: Dataverse) -> None:
    # Given a report already recorded and approved
    given_expense_categories(dataverse)
    given_projects(dataverse)
    first = dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    dataverse.wait_jobs_finished(2)
    before = (dataverse.count(tables.expenses), dataverse.count(tables.actuals), len(dataverse.outbox_payloads("msdyn_actuals")))
    assert before == (2, 3, 1)

    # When the same message arrives again, and the same rows arrive in a new message
    dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id=first.correlation_id, message_id=first.message_id)
    dataverse.wait_drained(table_map("msdyn_expenses").inbound.name)
    resent = dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id=first.correlation_id)
    dataverse.wait_applied(resent)
    dataverse.wait_drained(table_map("msdyn_expenses").inbound.name, DATAVERSE_SYSTEM_JOBS.name)

    # Then there is still one record, one job and one set of actuals per line, and nothing new was sent
    assert (dataverse.count(tables.expenses), dataverse.count(tables.actuals), len(dataverse.outbox_payloads("msdyn_actuals"))) == before
    assert [(j.status, j.attempts) for j in dataverse.jobs()] == [("succeeded", 1), ("succeeded", 1)]
    assert len(dataverse.outbox_payloads("run_system_jobs")) == 1
    inbox = dataverse.database.messaging.inbox
    assert dataverse.count(inbox, inbox.c.message_id == str(first.message_id)) == 1

    # And a run_system_jobs naming jobs that already ran does nothing
    jobs = [{"job_id": job.job_id} for job in dataverse.jobs()]
    rerun = new_envelope(
        contract="run_system_jobs", version=1, source=Side.DATAVERSE, payload={"rows": jobs},
        correlation_id=first.correlation_id, legal_entity="USPM",
    )
    Publisher(dataverse.runtime.broker, Signer(key_ring(dataverse.runtime.settings), "dataverse")).send(DATAVERSE_SYSTEM_JOBS, rerun)
    dataverse.wait_applied(rerun)
    assert [(j.status, j.attempts) for j in dataverse.jobs()] == [("succeeded", 1), ("succeeded", 1)]
    assert dataverse.count(tables.actuals) == 3 and dataverse.dead_letters() == []


def test_an_expense_of_another_company_is_refused(dataverse: Dataverse) -> None:
    given_expense_categories(dataverse)
    given_projects(dataverse)
    dataverse.deliver("msdyn_expenses", DEMF_REPORT, "DEMF", correlation_id="expense-report:EXP-DE-1")
    dataverse.wait_jobs_finished(1)

    # When USPM sends a record with DEMF's expense id
    dataverse.deliver("msdyn_expenses", DEMF_REPORT, "USPM", correlation_id="expense-report:EXP-DE-1:wrong")
    wait_until(dataverse.dead_letters, timeout=WAIT, what="refusal recorded")

    # Then it is refused with its reason and nothing changed
    assert dataverse.dead_letters() == [
        "BusinessRuleViolation: msdyn_expenses refused, nothing written: "
        "rows.0: expense EXP-DE-1-1 belongs to company DEMF, not USPM"
    ]
    assert dataverse.rows(select(tables.expenses.c.legal_entity)) == [("DEMF",)]


def test_posting_results_are_written_back_onto_the_actuals(dataverse: Dataverse) -> None:
    # Given the actuals of a USPM report
    given_expense_categories(dataverse)
    given_projects(dataverse)
    dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    dataverse.wait_jobs_finished(2)

    # When finance posts two of them through the integration journal
    posting = {"posted_on": "2026-03-05", "accounting_currency": "USD"}
    postings = dataverse.deliver("msdyn_actualpostings", [
        {**posting, "actual_id": "EXP-US-1-1-COST", "voucher": "PIJ-000001", "accounting_amount": "254.80", "exchange_rate": "1"},
        {**posting, "actual_id": "EXP-US-1-2-COST", "voucher": "PIJ-000001", "accounting_amount": "541.79", "exchange_rate": "1.08360000"},
    ], "USPM", correlation_id="expense-report:EXP-US-1")
    dataverse.wait_applied(postings)

    # Then each carries its voucher, date, accounting amount and rate, and shows posted
    written = {
        a.actual_id: (a.voucher, str(a.posted_on), a.accounting_amount, a.exchange_rate, a.posting_status)
        for a in dataverse.actuals()
    }
    assert written == {
        "EXP-US-1-1-COST": ("PIJ-000001", "2026-03-05", Decimal("254.80"), Decimal("1.00000000"), "posted"),
        "EXP-US-1-1-SALES": (None, "None", Decimal("254.80"), Decimal("1.00000000"), "unposted"),
        "EXP-US-1-2-COST": ("PIJ-000001", "2026-03-05", Decimal("541.79"), Decimal("1.08360000"), "posted"),
    }

    # And a posting naming an unknown actual is refused whole
    dataverse.deliver("msdyn_actualpostings", [
        {**posting, "actual_id": "EXP-US-9-1-COST", "voucher": "PIJ-000002", "accounting_amount": "1.00", "exchange_rate": "1"},
    ], "USPM", correlation_id="expense-report:EXP-US-9")
    wait_until(dataverse.dead_letters, timeout=WAIT, what="refusal recorded")
    assert dataverse.dead_letters() == [
        "BusinessRuleViolation: msdyn_actualpostings refused, nothing written: "
        "rows.0: actual EXP-US-9-1-COST is not an actual of company USPM"
    ]


def test_jobs_cli_lists_the_jobs_and_retries_the_failed_ones(dataverse: Dataverse, backend) -> None:
    # Given a failed job (closed project) and a succeeded one
    given_expense_categories(dataverse)
    given_projects(dataverse)
    dataverse.command("set_project_status", [{"project_id": "PRJ-US-2", "status": "closed"}], "USPM")
    dataverse.deliver("msdyn_expenses", USPM_REPORT, "USPM", correlation_id="expense-report:EXP-US-1")
    dataverse.wait_jobs_finished(2)
    settings = backend.settings

    # When an operator lists the failed jobs
    listing = dualwrite(settings, "jobs", "--status", "failed", "--json")

    # Then the failed job shows with its reason
    assert listing.returncode == ExitCode.OK, listing.stderr
    failed_id = approval_job_id("EXP-US-1-2")
    assert [
        (j["job_id"], j["legal_entity"], j["expense_id"], j["status"], j["attempts"], j["error"])
        for j in json.loads(listing.stdout)
    ] == [(failed_id, "USPM", "EXP-US-1-2", "failed", 1, "project PRJ-US-2 is closed")]
    table = dualwrite(settings, "jobs").stdout
    assert table.splitlines()[0].split() == ["JOB", "LEGAL", "ENTITY", "EXPENSE", "STATUS", "ATTEMPTS", "AGE", "ERROR"]
    assert "project PRJ-US-2 is closed" in table and "succeeded" in table

    # When the project is reopened and the operator retries every failed job
    dataverse.command("set_project_status", [{"project_id": "PRJ-US-2", "status": "active"}], "USPM")
    retry = dualwrite(settings, "jobs", "retry", "--failed", "--json")
    if not backend.real_services:
        # Then on the embedded broker nothing could reach a worker: refused, nothing reset
        assert retry.returncode == ExitCode.CONFIGURATION
        assert "embedded broker" in retry.stderr
        assert dataverse.job("EXP-US-1-2").status == "failed"
        return
    assert retry.returncode == ExitCode.OK, retry.stderr
    assert json.loads(retry.stdout)["retried"] == [failed_id]

    # Then the worker runs it again and it succeeds
    wait_until(lambda: dataverse.job("EXP-US-1-2").status == "succeeded", timeout=WAIT, what="retried job succeeded")
    assert dataverse.count(tables.actuals, tables.actuals.c.expense_id == "EXP-US-1-2") == 1
    again = dualwrite(settings, "jobs", "retry", failed_id.lower())
    assert again.returncode == ExitCode.FAILED
    assert f"job {failed_id} is succeeded, not failed" in again.stderr


def test_two_runners_never_claim_the_same_job(dataverse: Dataverse) -> None:
    """The claim as two processes see it: only waiting jobs, or one's own jobs again after a retry."""
    # Given a waiting job that no run_system_jobs message names yet
    with dataverse.engine.begin() as connection:
        job_ids = create_approval_jobs(connection, "USPM", [("EXP-CLAIM-1", "test:claim")], utcnow())
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    if dataverse.engine.dialect.name == "postgresql":
        # While runner one holds its claim uncommitted, runner two skips the locked job at once
        with dataverse.engine.begin() as one:
            assert claim_jobs(one, "USPM", job_ids, first, utcnow()) == job_ids
            with dataverse.engine.begin() as two:
                assert claim_jobs(two, "USPM", job_ids, second, utcnow()) == []
    else:
        with dataverse.engine.begin() as one:
            assert claim_jobs(one, "USPM", job_ids, first, utcnow()) == job_ids

    # Once claimed, another runner gets nothing, another company gets nothing, the same runner gets it back
    with dataverse.engine.begin() as connection:
        assert claim_jobs(connection, "USPM", job_ids, second, utcnow()) == []
        assert claim_jobs(connection, "DEMF", job_ids, first, utcnow()) == []
        assert claim_jobs(connection, "USPM", job_ids, first, utcnow()) == job_ids
    job = dataverse.jobs()[0]
    assert (job.status, job.claimed_by, job.attempts) == ("in_progress", first, 2)


def test_jobs_cli_says_where_it_looked_when_there_is_no_dataverse_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "nowhere", dataverse_db_url=None)

    listing = dualwrite(settings, "jobs")

    assert listing.returncode == ExitCode.UNAVAILABLE
    assert "no Dataverse database at sqlite:///" in listing.stderr
    assert not (tmp_path / "nowhere").exists()


def dualwrite(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``dualwrite`` command as an operator would, against the settings' broker and Dataverse
    database (in this process: tests/in_process_cli.py says why that proves the same)."""
    env = {"DUALWRITE_BROKER_URL": settings.broker_url, "DUALWRITE_DATA_DIR": str(settings.data_dir)}
    if settings.dataverse_db_url:
        env["DUALWRITE_DATAVERSE_DB_URL"] = settings.dataverse_db_url
    return run_dualwrite(args, env)
