"""``dualwrite trace``: an operator follows one expense report through every hop, on both backends.

Given the demo's R-US-001 created, submitted, approved by maria and carol, posted, approved in
Dataverse, staged, imported and posted on the integration journal, the trace lists every hop in
time order, each on the queue it should be on, and ends at the project cost posting and its results
in Dataverse. A report held up on the way says where and why; an id nobody knows is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from contracts.queues import table_map
from tests.integration.report_flow import (
    approve_report,
    commit_unsent_expense_categories,
    dualwrite,
    given_the_demo_reference_data,
    import_from_staging,
    post_report,
    step,
    unique_correlation,
)
from tests.integration.support import FINANCE, System, load_test_companies
from workers.cli.exit_codes import ExitCode
from workers.dataverse.domain.system_jobs import approval_job_id
from workers.runtime import Runtime

pytestmark = pytest.mark.settings(import_interval_seconds=3600)  # Import from staging runs when the test says

COMMANDS = "finance.commands"
#: (side, queue or step, contract, result) of every hop of R-US-001, in order.
R_US_001_HOPS = [
    ("finance", COMMANDS, "create_expense_reports", "applied"),
    ("finance", COMMANDS, "submit_expense_reports", "applied"),
    ("finance", COMMANDS, "approve_expense_reports", "applied"),  # maria: the project lines
    ("finance", COMMANDS, "approve_expense_reports", "applied"),  # carol: the line on no project
    ("finance", COMMANDS, "post_expense_reports", "applied"),
    ("bridge", "msdyn_expenses.finance-to-bridge", "msdyn_expenses", "applied"),
    ("dataverse", "msdyn_expenses.bridge-to-dataverse", "msdyn_expenses", "applied"),
    ("dataverse", "dataverse.system-jobs", "run_system_jobs", "applied"),
    ("dataverse", "automated approval", None, "succeeded"),
    ("dataverse", "automated approval", None, "succeeded"),
    ("bridge", "msdyn_actuals.dataverse-to-bridge", "msdyn_actuals", "applied"),
    ("finance", "msdyn_actuals.bridge-to-finance", "msdyn_actuals", "applied"),
    ("finance", "Import from staging", None, "imported"),
    ("finance", "integration journal posting", None, "posted"),
    ("bridge", "msdyn_actualpostings.finance-to-bridge", "msdyn_actualpostings", "applied"),
    ("dataverse", "msdyn_actualpostings.bridge-to-dataverse", "msdyn_actualpostings", "applied"),
]


def trace_json(system: System, document_id: str) -> dict:
    result = dualwrite(system.runtime.settings, "trace", document_id, "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    return json.loads(result.stdout)


def test_trace_of_a_posted_expense_report_lists_every_hop_in_order(system: System) -> None:
    # Given R-US-001 posted in finance, approved in Dataverse, and its journal imported and posted
    given_the_demo_reference_data(system)
    post_report(system, "R-US-001")
    run = import_from_staging(system)
    assert (run.lines_imported, run.journals_posted) == (4, 1)  # two project lines, each a cost and an unbilled sales actual

    # When an operator traces it by its report id
    found = trace_json(system, "R-US-001")

    # Then every hop shows, in time order, on the queue it belongs to, and the trace ends at the project cost posting
    hops = found["hops"]
    assert [(h["side"], h["queue"], h["contract"], h["result"]) for h in hops] == R_US_001_HOPS
    moments = [datetime.fromisoformat(h["at"]) for h in hops]
    assert moments == sorted(moments)
    messages = [h for h in hops if h["kind"] == "message"]
    assert all(h["waited_ms"] is not None and h["ran_ms"] is not None and h["version"] == 1 for h in messages)
    assert [h["rows"] for h in messages] == [1, 1, 1, 1, 1, 2, 2, 2, 4, 4, 4, 4]
    journal_id = found["expense_report"]["journals"][0]
    posting = hops[-3]
    assert posting["detail"] == (
        f"journal {journal_id}, voucher PIJ-{journal_id}: project cost 891.00 USD moved from the expense integration "
        "account to project cost"
    )
    assert {h["correlation_id"] for h in hops[-2:]} == {f"integration-journal:{journal_id}"}
    assert found["correlation_ids"] == ["expense-report:USPM:R-US-001", f"integration-journal:{journal_id}"]

    # And each line says how far it went: both project lines posted to project cost and back in Dataverse
    report = found["expense_report"]
    assert (report["status"], report["voucher"]) == ("posted", "EXP-R-US-001")
    lines = {line["expense_id"]: line for line in report["lines"]}
    for expense_id in ("R-US-001-1", "R-US-001-2"):
        line = lines[expense_id]
        assert (line["job_status"], line["done"]) == ("succeeded", True)
        assert [(a["transaction_type"], a["staging"], a["journal_status"], a["project_transaction"], a["dataverse_posting"])
                for a in line["actuals"]] == [
            ("cost", "imported", "posted", "cost", "posted"),
            ("unbilled_sales", "imported", "posted", "unbilled_revenue", "posted"),
        ]
    assert lines["R-US-001-3"]["actuals"] == [] and lines["R-US-001-3"]["done"]
    assert found["where"] == [
        "complete: report USPM:R-US-001 posted (voucher EXP-R-US-001); every project line is on project cost "
        "and Dataverse has its posting results"
    ]

    # And the same document is found by company and report, and by the id of any of its messages
    assert trace_json(system, "uspm:r-us-001")["hops"] == hops
    by_message = trace_json(system, hops[6]["message_id"])  # msdyn_expenses, as Dataverse applied it
    assert (by_message["found_as"], by_message["subject"], by_message["hops"]) == ("message id", found["subject"], hops)

    # And people get the same as a table
    table = dualwrite(system.runtime.settings, "trace", "R-US-001")
    assert table.returncode == ExitCode.OK, table.stderr
    assert table.stdout.startswith("expense report USPM:R-US-001 of alice: posted, voucher EXP-R-US-001\n")
    assert "msdyn_actualpostings.bridge-to-dataverse" in table.stdout and "where it is:\n  - complete:" in table.stdout


def test_trace_says_where_a_held_up_report_waits_and_why(system: System) -> None:
    # Given R-US-002 approved, then its project closed, then the report posted: its automated approval fails
    given_the_demo_reference_data(system)
    approve_report(system, "R-US-002")
    system.publish("set_project_status", [{"project_id": "PRJ-US-100", "status": "closed"}], legal_entity="USPM")
    system.settle()
    step(system, "post_expense_reports", "R-US-002")
    # ... and a late approval naming it, sent under a correlation id of its own, was refused
    system.publish("approve_expense_reports", [{"report_id": "R-US-002", "approver": "maria"}], legal_entity="USPM",
                   correlation_id="approval:R-US-002:maria")
    system.settle()

    # When an operator traces it
    found = trace_json(system, "R-US-002")

    # Then the trace stops at the failed approval, says why and what to do, and shows the refused command
    job = approval_job_id("R-US-002-1")
    assert [(h["queue"], h["result"]) for h in found["hops"]][-2:] == [
        ("automated approval", "failed"),
        (COMMANDS, "dead-lettered"),
    ]
    assert "project PRJ-US-100 is closed" in found["hops"][-2]["detail"]
    assert found["where"][-1] == (
        f"line 1 (R-US-002-1): automated approval failed: project PRJ-US-100 is closed; "
        f"fix the cause, then `dualwrite jobs retry {job}`"
    )
    assert found["where"][0].startswith("dead letter on finance.commands (finance), not replayed: BusinessRuleViolation:")
    assert found["where"][0].endswith("report R-US-002 is posted; only a submitted report can be approved (attempts: 1)")


def test_trace_of_an_unknown_id_exits_non_zero_and_says_so(system: System) -> None:
    given_the_demo_reference_data(system)

    result = dualwrite(system.runtime.settings, "trace", "R-NOWHERE-9")

    assert result.returncode == ExitCode.INVALID_INPUT
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "dualwrite: no expense report, correlation id or message id 'R-NOWHERE-9' in the finance, Dataverse or bridge database"
    )


@pytest.fixture
def stopped(backend) -> Iterator[System]:  # noqa: ANN001
    """The three sides with their tables, workers not started: messages stay where they are put."""
    runtime = Runtime(backend.settings.model_copy(update={"outbox_sweep_seconds": 3600}))
    try:
        backend.fresh_tables(runtime)
        load_test_companies(runtime)
        yield System(runtime, backend.name)
    finally:
        runtime.stop()


def test_trace_shows_a_message_waiting_in_the_outbox_then_on_its_queue_then_applied(stopped: System) -> None:
    # Given a finance outbox message committed and not yet sent
    correlation = unique_correlation("expense-categories:USPM")
    message_id = commit_unsent_expense_categories(stopped, correlation)
    queue = table_map("msdyn_expensecategories").outbound.name

    def only_hop() -> tuple:
        hops = trace_json(stopped, correlation)["hops"]
        assert len(hops) == 1 and hops[0]["message_id"] == message_id
        return hops[0]["side"], hops[0]["queue"], hops[0]["result"]

    # Then the trace says it waits in the outbox
    assert only_hop() == ("bridge", queue, "waiting in outbox")

    # When the relay sends it, no worker running yet: it waits on its queue
    assert stopped.runtime.side(FINANCE).relay.relay() == 1
    assert only_hop() == ("bridge", queue, "waiting on queue")

    # When the workers run: the bridge applies it and Dataverse the message the bridge sent on
    stopped.runtime.start()
    stopped.settle()
    hops = trace_json(stopped, correlation)["hops"]
    assert [(h["side"], h["queue"], h["result"]) for h in hops] == [
        ("bridge", queue, "applied"),
        ("dataverse", table_map("msdyn_expensecategories").inbound.name, "applied"),
    ]
