"""Initial sync of a table map, on the embedded default and on real Redis + PostgreSQL.

The master side holds rows the other side has never seen (loaded before the integration existed,
so they are written straight into the master's database here). ``dualwrite maps initial-sync``
copies them over in pages; these scenarios check the copy, a crash half-way resumed from the
checkpoint, rows that cannot be sent reported one by one, and a live change made during the sync
that the older synced copy must not overwrite.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.envelope import Side
from contracts.queues import BRIDGE_INITIAL_SYNC, DATAVERSE_COMMANDS, FINANCE_COMMANDS, table_map
from contracts.registry import Decoded
from shared.signatures import key_ring
from shared.errors import BusinessRuleViolation
from shared.waiting import wait_until
from tests.integration.operators import operator_environment
from tests.integration.support import BRIDGE, DATAVERSE, FINANCE, System, given_project
from workers.bridge.activity import activity_log
from workers.bridge.initial_sync import run_progress
from workers.bridge.initial_sync_tables import initial_sync_rows
from workers.bridge.map_states import MapState, read_state
from workers.bridge.tables import audit_log
from workers.dataverse import tables as dataverse
from workers.finance import tables as finance
from workers.operations import initial_sync

EXPENSE_CATEGORIES = table_map("msdyn_expensecategories")
PROJECTS = table_map("msdyn_projects")


# -- given ----------------------------------------------------------------------------------------


def given_finance_expense_categories(system: System, count: int, *, bad: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``count`` expense categories in finance, split over two companies, written before the integration."""
    bad = bad or {}
    rows = [
        {
            "legal_entity": "USMF" if number % 2 else "DEMF",
            "expense_category": f"CAT{number:05d}",
            "name": f"Category {number}",
            "shared_category": "TRAVEL",
            "expense_type": "hotel",
            **bad.get(number, {}),
        }
        for number in range(count)
    ]
    with system.database(FINANCE).engine.begin() as connection:
        connection.execute(finance.expense_categories.insert(), rows)
    return rows


def given_dataverse_projects(system: System, count: int) -> None:
    rows = [
        {
            "project_id": f"PRJ-{number:04d}",
            "legal_entity": "USMF",
            "name": f"Project {number}",
            "project_manager": "maria",
            "billable": number % 2 == 0,
            "status": "active",
        }
        for number in range(count)
    ]
    with system.database(DATAVERSE).engine.begin() as connection:
        connection.execute(dataverse.projects.insert(), rows)


def start(system: System, map_name: str, master: Side, *, page_size: int, resume: bool = False) -> initial_sync.Started:
    runtime = system.runtime
    return initial_sync.start(
        bridge=system.database(BRIDGE),
        master_database=system.database(master),
        broker=runtime.broker,
        registry=runtime.registry,
        ring=key_ring(runtime.settings),
        map_name=map_name,
        master=master,
        page_size=page_size,
        operator="tester",
        resume=resume,
    )


def finished(system: System, run_id: str) -> Any:
    return initial_sync.wait_for(system.database(BRIDGE), run_id, timeout=60)


def dataverse_expense_categories(system: System) -> dict[tuple[str, str], tuple[str, str, str]]:
    table = dataverse.expense_categories
    return {
        (row.legal_entity, row.expense_category): (row.name, row.transaction_category, row.expense_type)
        for row in system.rows(DATAVERSE, select(table))
    }


def map_state(system: System, name: str) -> MapState:
    with system.database(BRIDGE).engine.connect() as connection:
        return read_state(connection, name).state


def synced_messages_applied(system: System, side: Side, run_id: str) -> list[Any]:
    return system.inbox(side, system.database(side).messaging.inbox.c.correlation_id == f"initial-sync:{run_id}")


# -- scenarios --------------------------------------------------------------------------------------


def test_initial_sync_copies_every_row_of_the_master_in_pages_and_sets_the_map_running(system: System) -> None:
    # Given finance holds 1,250 expense categories in two companies that Dataverse has never seen
    rows = given_finance_expense_categories(system, 1250)
    # When an operator runs the initial sync of msdyn_expensecategories, 100 rows a page
    started = start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100)
    assert started.run.total_rows == 1250
    assert map_state(system, "msdyn_expensecategories") is MapState.INITIALIZING
    run = finished(system, started.run.run_id)
    system.settle()
    # Then Dataverse holds every one, field for field, in its company
    assert dataverse_expense_categories(system) == {
        (row["legal_entity"], row["expense_category"]): (row["name"], row["shared_category"], row["expense_type"])
        for row in rows
    }
    # And the run says 13 pages (the 13th ends it), every row read, sent and carried once, none refused
    assert (run.pages, run.rows_read, run.rows_sent, run.rows_carried, run.rows_failed) == (13, 1250, 1250, 1250, 0)
    assert map_state(system, "msdyn_expensecategories") is MapState.RUNNING
    assert system.all_dead_letters() == {"finance": [], "dataverse": [], "bridge": []}


class DiesOnPage:
    """Wraps the master's page handler: page ``page`` fails for good (dead-lettered) while armed."""

    def __init__(self, handler: Any, page: int) -> None:
        self.handler, self.page, self.armed = handler, page, True

    def __call__(self, message: Decoded[Any], uow: Any) -> None:
        if self.armed and message.payload.rows[0].page == self.page:
            raise BusinessRuleViolation(f"simulated crash on page {self.page}")
        self.handler(message, uow)


def test_a_sync_that_died_half_way_resumes_from_its_checkpoint_with_nothing_doubled(system: System) -> None:
    # Given 1,000 expense categories in finance, and a finance worker that dies on page 6 of 10
    rows = given_finance_expense_categories(system, 1000)
    consumer = system.consumer(FINANCE, FINANCE_COMMANDS)
    dies = DiesOnPage(consumer.endpoint.handlers["initial_sync_finance_page"], page=6)
    consumer.endpoint.handlers["initial_sync_finance_page"] = dies
    started = start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100)
    run_id = started.run.run_id
    wait_until(lambda: system.dead_letters(FINANCE), timeout=30, what="page 6 dead-lettered")
    system.settle()
    # Then the run stopped after page 5: 500 rows in Dataverse, the map still initializing
    stalled = initial_sync.status(system.database(BRIDGE), "msdyn_expensecategories")
    assert stalled is not None and not stalled.finished
    assert (stalled.pages, stalled.rows_carried, stalled.next_page) == (5, 500, 6)
    assert len(dataverse_expense_categories(system)) == 500
    assert map_state(system, "msdyn_expensecategories") is MapState.INITIALIZING
    # And starting it again without --resume is refused, naming the unfinished run
    with pytest.raises(initial_sync.InitialSyncRefused, match=run_id):
        start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100)
    # When the cause is gone and the operator resumes it
    dies.armed = False
    resumed = start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100, resume=True)
    assert resumed.run.run_id == run_id and resumed.resumed
    # And the audit log names who started the run and who resumed it, and from where
    audit = system.rows(BRIDGE, select(audit_log).order_by(audit_log.c.id))
    assert [(row.operator, row.action, row.target, row.count) for row in audit] == [
        ("tester", "map-initial-sync", "msdyn_expensecategories", 1000),
        ("tester", "map-initial-sync-resume", "msdyn_expensecategories", 5),
    ]
    started_details, resumed_details = (json.loads(row.details) for row in audit)
    assert started_details == {"run_id": run_id, "master": "finance", "rows": 1000, "page_size": 100,
                               "from": "running", "to": "initializing"}
    assert (resumed_details["run_id"], resumed_details["next_page"], resumed_details["rows_read"]) == (run_id, 6, 500)
    run = finished(system, run_id)
    system.settle()
    # Then every row reached Dataverse, and no page or row went twice
    assert len(dataverse_expense_categories(system)) == len(rows) == 1000
    assert (run.pages, run.rows_read, run.rows_carried, run.resumes) == (10, 1000, 1000, 1)
    batches = synced_messages_applied(system, DATAVERSE, run_id)
    assert sum(message.rows for message in batches) == 1000  # each row applied by Dataverse once
    assert system.count(BRIDGE, initial_sync_rows, initial_sync_rows.c.run_id == run_id) == 1000
    assert map_state(system, "msdyn_expensecategories") is MapState.RUNNING


class DiesOnceAfterReading:
    """The master's worker crashes after reading a page, before committing it: the retry redoes it."""

    def __init__(self, handler: Any, page: int) -> None:
        self.handler, self.page, self.crashes = handler, page, 0

    def __call__(self, message: Decoded[Any], uow: Any) -> None:
        self.handler(message, uow)
        if message.payload.rows[0].page == self.page and self.crashes == 0:
            self.crashes += 1
            raise RuntimeError("worker died before commit")


def test_a_crash_before_a_page_commits_is_retried_and_the_run_goes_on_by_itself(system: System) -> None:
    given_finance_expense_categories(system, 450)
    consumer = system.consumer(FINANCE, FINANCE_COMMANDS)
    crash = DiesOnceAfterReading(consumer.endpoint.handlers["initial_sync_finance_page"], page=3)
    consumer.endpoint.handlers["initial_sync_finance_page"] = crash
    started = start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100)
    run = finished(system, started.run.run_id)
    system.settle()
    assert crash.crashes == 1
    assert (run.pages, run.rows_carried, run.resumes) == (5, 450, 0)
    assert len(dataverse_expense_categories(system)) == 450
    batches = synced_messages_applied(system, DATAVERSE, started.run.run_id)
    assert sum(message.rows for message in batches) == 450


def test_every_row_that_cannot_be_sent_is_reported_with_its_key_and_reason(system: System) -> None:
    # Given 300 expense categories, seven of them legacy rows the map's contract refuses, over three pages
    bad = {
        5: {"expense_type": "spaceship"},
        17: {"name": "   "},
        60: {"expense_category": "BAD CODE"},
        61: {"expense_type": "yacht"},
        150: {"shared_category": "NOT A CODE"},
        222: {"expense_type": "teleport"},
        299: {"expense_type": ""},
    }
    rows = given_finance_expense_categories(system, 300, bad=bad)
    started = start(system, "msdyn_expensecategories", Side.FINANCE, page_size=100)
    run = finished(system, started.run.run_id)
    system.settle()
    # Then all seven are reported, not the first five, each with its key and the field at fault
    reported = {tuple(failure["key"]): failure["reason"] for failure in run.failures}
    expected_keys = {(rows[n]["legal_entity"], rows[n]["expense_category"]) for n in bad}
    assert set(reported) == expected_keys and run.rows_failed == 7
    assert "expense_type" in reported[(rows[5]["legal_entity"], "CAT00005")]
    assert "name" in reported[(rows[17]["legal_entity"], "CAT00017")]
    assert "transaction_category" in reported[(rows[150]["legal_entity"], "CAT00150")]
    # And the 293 good rows reached Dataverse; the map runs
    assert len(dataverse_expense_categories(system)) == 293 == run.rows_carried
    assert map_state(system, "msdyn_expensecategories") is MapState.RUNNING


class HeldInTransit:
    """Keeps what a side's relay sends and ``holds`` picks from leaving until released (a slow hop).

    Wraps the relay: the message is committed and marked sent, but travels only on ``release``, as a
    message slowed down on its way would. ``arrived`` is set once one is held.
    """

    def __init__(self, relay: Any, holds: Callable[[str, str], bool]) -> None:
        self.send, self.holds = relay.send, holds
        relay.send = self
        self.held: list[tuple[str, str, str, str]] = []
        self.arrived, self.released = threading.Event(), False

    def __call__(self, queue_name: str, actor_name: str, message_id: str, body: str) -> None:
        if not self.released and self.holds(queue_name, body):
            self.held.append((queue_name, actor_name, message_id, body))
            self.arrived.set()
            return
        self.send(queue_name, actor_name, message_id, body)

    def release(self) -> None:
        self.released = True
        for held in self.held:
            self.send(*held)


def synced_batch_of(project_id: str) -> Callable[[str, str], bool]:
    """The master's synced batch that carries ``project_id`` (a message may carry other documents'
    parts beside it, a live change among them: what matters is the synced part's rows)."""

    def holds(queue: str, body: str) -> bool:
        if queue != PROJECTS.outbound.name:
            return False
        envelope = json.loads(body)
        rows, start = envelope["payload"]["rows"], 0
        for part in envelope.get("parts") or [{"correlation_id": envelope["correlation_id"], "rows": len(rows)}]:
            mine = rows[start : start + part["rows"]]
            start += part["rows"]
            if part["correlation_id"].startswith("initial-sync:") and any(row["project_id"] == project_id for row in mine):
                return True
        return False

    return holds


def report_of_page(page: int) -> Callable[[str, str], bool]:
    """The master's report of page ``page`` (committed with the next page's command): a report
    delivered late, as two bridge threads or a retry would record page 3's report before page 2's."""
    return lambda queue, body: queue == BRIDGE_INITIAL_SYNC.name and [
        row["page"] for row in json.loads(body)["payload"]["rows"]
    ] == [page]


def on_queue(queue_name: str) -> Callable[[str, str], bool]:
    return lambda queue, _body: queue == queue_name


def test_a_live_change_made_during_the_sync_is_not_overwritten_by_the_older_synced_copy(system: System) -> None:
    # Given 250 active projects in Dataverse that finance has never seen
    given_dataverse_projects(system, 250)
    in_transit = HeldInTransit(system.runtime.side(DATAVERSE).relay, synced_batch_of("PRJ-0150"))
    # When the sync reads PRJ-0150's page (active), and before that page reaches the bridge,
    started = start(system, "msdyn_projects", Side.DATAVERSE, page_size=100)
    assert in_transit.arrived.wait(30)
    # someone closes PRJ-0150 in Dataverse: the live change reaches finance first
    system.publish("set_project_status", [{"project_id": "PRJ-0150", "status": "closed"}], legal_entity="USMF")

    def finance_status(project_id: str) -> str | None:
        table = finance.projects
        found = system.rows(FINANCE, select(table.c.status).where(table.c.project_id == project_id))
        return found[0].status if found else None

    wait_until(lambda: finance_status("PRJ-0150") == "closed", timeout=30, what="live close applied in finance")
    in_transit.release()
    run = finished(system, started.run.run_id)
    system.settle()
    # Then finance keeps the live change: the older synced copy was superseded, not applied
    assert finance_status("PRJ-0150") == "closed"
    assert (run.rows_sent, run.rows_superseded, run.rows_carried) == (250, 1, 249)
    table = finance.projects
    assert system.rows(FINANCE, select(func.count()).select_from(table))[0][0] == 250
    assert finance_status("PRJ-0149") == "active" and finance_status("PRJ-0151") == "active"
    assert map_state(system, "msdyn_projects") is MapState.RUNNING
    assert system.all_dead_letters() == {"finance": [], "dataverse": [], "bridge": []}


def test_a_run_is_finished_only_once_every_page_is_reported_whatever_order_the_reports_arrive_in(
    system: System,
) -> None:
    # Given 250 projects in Dataverse, and the report of page 2 of 3 late on its way to the bridge
    given_dataverse_projects(system, 250)
    late = HeldInTransit(system.runtime.side(DATAVERSE).relay, report_of_page(2))
    started = start(system, "msdyn_projects", Side.DATAVERSE, page_size=100)
    run_id = started.run.run_id

    def progress() -> Any:
        with system.database(BRIDGE).engine.connect() as connection:
            return run_progress(connection, run_id)

    # When the last page's report (page 3, which ends the export) reaches the bridge before page 2's
    wait_until(lambda: late.held and progress().pages == 2, timeout=30, what="pages 1 and 3 reported, page 2 held")
    system.settle()
    # Then the run is not finished: page 2's 100 rows are not accounted for, and the map still initializes
    early = progress()
    assert (early.finished, early.settled, early.pages, early.rows_sent, early.next_page) == (False, False, 2, 150, 4)
    assert map_state(system, "msdyn_projects") is MapState.INITIALIZING
    # When page 2's report arrives
    late.release()
    run = finished(system, run_id)
    system.settle()
    # Then the run is finished with every page and row, and the map runs
    assert (run.pages, run.rows_read, run.rows_sent, run.rows_carried, run.rows_superseded) == (3, 250, 250, 250, 0)
    assert map_state(system, "msdyn_projects") is MapState.RUNNING
    table = finance.projects
    assert system.rows(FINANCE, select(func.count()).select_from(table))[0][0] == 250
    assert system.all_dead_letters() == {"finance": [], "dataverse": [], "bridge": []}


def test_a_synced_copy_read_before_finance_s_change_reached_the_master_is_superseded_not_a_conflict(
    system: System,
) -> None:
    """Two-way maps decide synced copies by the rows' own version alone (one notion of version)."""
    # Given project P-1 on both sides at Dataverse's version 1, and finance's rename carried by the
    # bridge (version 2, finance's) but not yet arrived in Dataverse
    given_project(system, "DEMF", "P-1")
    on_the_way = HeldInTransit(system.runtime.side(BRIDGE).relay, on_queue(PROJECTS.reverse_inbound.name))
    system.publish("update_projects", [{"project_id": "P-1", "name": "Renamed in finance"}], legal_entity="DEMF")
    wait_until(lambda: on_the_way.held, timeout=30, what="finance's rename carried by the bridge")
    # When an initial sync of msdyn_projects copies Dataverse's P-1, still at version 1
    started = start(system, "msdyn_projects", Side.DATAVERSE, page_size=100)
    run = finished(system, started.run.run_id)
    # Then the bridge dropped the older copy: superseded in the run, stale in the log, no conflict
    assert (run.rows_sent, run.rows_carried, run.rows_superseded) == (1, 0, 1)
    with system.database(BRIDGE).engine.connect() as connection:
        lines = activity_log(connection, "msdyn_projects", limit=100, oldest_first=True)
    assert [line.kind for line in lines if line.kind in ("conflict", "stale")] == ["stale"]
    # And once finance's rename arrives, both sides hold it
    on_the_way.release()
    system.settle()
    for side in (FINANCE, DATAVERSE):
        table = (finance if side is FINANCE else dataverse).projects
        [row] = system.rows(side, select(table.c.name, table.c.row_version, table.c.row_origin))
        assert tuple(row) == ("Renamed in finance", 2, "finance"), side
    assert system.all_dead_letters() == {"finance": [], "dataverse": [], "bridge": []}


def test_transactional_maps_and_the_wrong_master_are_refused_with_a_clear_reason(system: System) -> None:
    with pytest.raises(initial_sync.InitialSyncRefused, match="no initial sync.*transactions"):
        start(system, "msdyn_expenses", Side.FINANCE, page_size=100)
    with pytest.raises(initial_sync.InitialSyncRefused, match="mastered by dataverse.*--master dataverse"):
        start(system, "msdyn_projects", Side.FINANCE, page_size=100)
    assert system.queue_length(DATAVERSE_COMMANDS) == 0 and system.queue_length(FINANCE_COMMANDS) == 0


# -- the command line ------------------------------------------------------------------------------


def test_the_operator_command_syncs_reports_refused_rows_and_shows_the_run(
    system: System, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workers.cli import main

    operator_environment(monkeypatch, system.runtime.settings)
    if system.backend == "embedded":
        # The embedded broker lives inside the process running the workers: the command says so.
        assert main(["maps", "initial-sync", "msdyn_expensecategories", "--master", "finance"]) == 5
        assert "embedded broker" in capsys.readouterr().err
        return
    given_finance_expense_categories(system, 120, bad={7: {"expense_type": "spaceship"}, 90: {"name": " "}})
    capsys.readouterr()
    code = main(["maps", "initial-sync", "msdyn_expensecategories", "--master", "finance", "--page-size", "50", "--json"])
    out = capsys.readouterr().out  # the workers of this test log on stdout too: the document starts at "{"
    run = json.loads(out if out.startswith("{") else out[out.index("\n{\n") + 1 :])
    # Refused rows make the exit status 1, each named with its key and reason
    assert code == 1 and run["settled"] and run["state"] == "finished"
    assert (run["pages"], run["rows_read"], run["rows_carried"], run["rows_failed"]) == (3, 120, 118, 2)
    assert sorted(failure["key"][1] for failure in run["failures"]) == ["CAT00007", "CAT00090"]
    assert main(["maps", "initial-sync", "msdyn_expensecategories", "--status"]) == 1
    shown = capsys.readouterr().out
    assert "finished; 3 page(s), 120 row(s) read of 120, 118 carried" in shown
    assert "refused USMF, CAT00007 (page 2): expense_type:" in shown
    # A wrong master is a usage error that names the right one
    assert main(["maps", "initial-sync", "msdyn_projects", "--master", "finance"]) == 2
    assert "--master dataverse" in capsys.readouterr().err
