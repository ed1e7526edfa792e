"""Table maps as operators run them: pause and in-order release, stop, alert rules, map versions.

Each test runs on the embedded default and on the real Redis + PostgreSQL (``backend`` skips
those off CI when they are down and fails under CI). The map used is ``msdyn_expensecategories``
(finance -> Dataverse): Dataverse upserts each expense category whole, keyed by company and
code, so the order in which changes land decides what Dataverse ends up holding.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from contracts.batch import Batch, Row, Rows
from contracts.catalog import CONTRACTS
from contracts.envelope import Envelope, Side, new_envelope
from contracts.expense_categories import MSDYN_EXPENSECATEGORIES, ExpenseCategoriesV1
from contracts.fields import Code, Name
from contracts.maps import map_declaration
from contracts.queues import table_map
from contracts.registry import Contract, build_registry
from shared.consumer import Endpoint
from shared.waiting import wait_until
from tests.integration.operators import operator_environment
from tests.integration.support import BRIDGE, DATAVERSE, System, load_test_companies
from workers.bridge import map_control
from workers.bridge.activity import Activity, activity_log
from workers.bridge.handlers import MapCarrier
from workers.bridge.map_states import MapStatus, read_state
from workers.bridge.tables import audit_log
from workers.cli import main
from workers.dataverse import tables as dataverse
from workers.runtime import Runtime

MAP = "msdyn_expensecategories"
OUTBOUND = table_map(MAP).outbound
COMPANY = "DEMF"
EXPENSE_TYPES = ("hotel", "meals", "airline", "transport", "other")
#: Seconds to wait for a thousand messages to pass through (the 2-core machine is shared).
LONG = 300.0


# -- acting as the finance side and as an operator -----------------------------------------------


def category_change(index: int, published_at: datetime, *, categories: int = 3, version: int = 1) -> Envelope:
    """Change number ``index`` to one of a few expense categories, as finance publishes it at ``published_at``."""
    row = {
        "expense_category": f"CAT-{index % categories}",
        "name": f"change {index}",
        "transaction_category": f"TC-{index % 7}",
        "expense_type": EXPENSE_TYPES[index % len(EXPENSE_TYPES)],
    }
    return new_envelope(
        contract=MAP, version=version, source=Side.FINANCE, payload={"rows": [row]},
        correlation_id=f"expense-category:CAT-{index % categories}", legal_entity=COMPANY,
    ).model_copy(update={"occurred_at": published_at})


def enqueue(system: System, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        system.put_raw(OUTBOUND, envelope.model_dump_json(), str(envelope.message_id))


def settle(system: System) -> None:
    """Wait until every queue is empty and every outbox sent: a thousand messages take a while on a busy machine."""
    system.runtime.wait_until_idle(timeout=LONG)


def dataverse_categories(system: System) -> dict[str, tuple[str, str, str]]:
    table = dataverse.expense_categories
    rows = system.rows(
        DATAVERSE,
        select(table.c.expense_category, table.c.name, table.c.transaction_category, table.c.expense_type)
        .where(table.c.legal_entity == COMPANY),
    )
    return {row.expense_category: (row.name, row.transaction_category, row.expense_type) for row in rows}


def as_held(envelopes: list[Envelope]) -> dict[str, tuple[str, str, str]]:
    """What Dataverse holds after these changes applied in this order."""
    last = {}
    for envelope in envelopes:
        for row in envelope.payload["rows"]:
            last[row["expense_category"]] = (row["name"], row["transaction_category"], row["expense_type"])
    return last


def maps_cli(backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """``dualwrite maps ... --json`` in process, configured for the test's backend."""
    operator_environment(monkeypatch, backend.settings)
    capsys.readouterr()
    code = main(["maps", *argv, "--json"])
    captured = capsys.readouterr()
    return code, printed_json(captured.out) if code == 0 else captured.err


def printed_json(out: str) -> Any:
    """The command's JSON document; the workers running in this process may log lines around it."""
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line in ("{", "[", "[]")), None)
    if start is None:
        return None
    if lines[start] == "[]":
        return []
    closing = "}" if lines[start] == "{" else "]"
    end = next(i for i in range(start, len(lines)) if lines[i] == closing)
    return json.loads("\n".join(lines[start : end + 1]))


def map_status(system: System) -> MapStatus:
    with system.database(BRIDGE).engine.connect() as connection:
        return read_state(connection, MAP)


def map_log(system: System, *kinds: str) -> list[Activity]:
    """The map's activity log, oldest first."""
    with system.database(BRIDGE).engine.connect() as connection:
        return activity_log(connection, MAP, limit=100_000, kinds=kinds, oldest_first=True)


def audit_actions(system: System) -> list[tuple[str, str, str]]:
    rows = system.rows(BRIDGE, select(audit_log.c.operator, audit_log.c.action, audit_log.c.target).order_by(audit_log.c.id))
    return [tuple(row) for row in rows]


# -- pause, then resume in the order published ---------------------------------------------------


@pytest.mark.settings(worker_threads=1)
def test_a_paused_map_holds_1000_changes_and_resume_applies_them_in_the_order_published(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One consumer thread per queue, so Dataverse applies in the order the bridge releases; the
    1,000 changes reach the broker shuffled, as several relays and consumer threads deliver them."""
    # Given msdyn_expensecategories paused by an operator
    code, paused = maps_cli(backend, monkeypatch, capsys, "pause", MAP, "--reason", "Dataverse upgrade", "--as", "ops1")
    assert code == 0 and (paused["before"], paused["after"]) == ("running", "paused")

    # When finance publishes 1,000 changes to the same three expense categories, delivered shuffled
    start = datetime.now(UTC) - timedelta(minutes=5)
    changes = [category_change(i, start + timedelta(milliseconds=i)) for i in range(1000)]
    enqueue(system, *random.Random(6).sample(changes, len(changes)))
    settle(system)

    # Then nothing reached Dataverse, nothing was lost: all 1,000 are held
    assert dataverse_categories(system) == {}
    assert map_status(system).held == 1000
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}

    # When the operator resumes the map and waits for the release
    code, resumed = maps_cli(backend, monkeypatch, capsys, "resume", MAP, "--wait", "--timeout", str(LONG), "--as", "ops2")
    assert code == 0 and (resumed["before"], resumed["after"], resumed["held"]) == ("paused", "running", 0)
    settle(system)

    # Then the bridge released them in the order finance published them
    assert [entry.message_id for entry in map_log(system, "released")] == [str(c.message_id) for c in changes]
    # And Dataverse holds each expense category as its last change left it
    assert dataverse_categories(system) == as_held(changes)
    # And the map counts them; the logs say who paused it, why, and who resumed it
    status = map_status(system)
    assert (status.state.value, status.applied, status.failed, status.held) == ("running", 1000, 0, 0)
    states = [entry.detail for entry in map_log(system, "state")]
    assert [(s["from"], s["to"], s["by"], s["reason"]) for s in states] == [
        ("running", "paused", "ops1", "Dataverse upgrade"),
        ("paused", "running", "ops2", None),
    ]
    assert audit_actions(system) == [("ops1", "map-pause", MAP), ("ops2", "map-resume", MAP)]


def test_messages_arriving_during_the_release_wait_behind_the_held_ones(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several consumer threads: A, B, C held, then D arrives while they are released: A, B, C, D."""
    # Given a paused map holding 300 changes
    assert maps_cli(backend, monkeypatch, capsys, "pause", MAP)[0] == 0
    start = datetime.now(UTC) - timedelta(minutes=5)
    first = [category_change(i, start + timedelta(milliseconds=i)) for i in range(300)]
    enqueue(system, *first)
    settle(system)
    assert map_status(system).held == 300

    # When it is resumed and 100 more changes arrive at once
    assert maps_cli(backend, monkeypatch, capsys, "resume", MAP)[0] == 0
    later = [category_change(i, datetime.now(UTC) + timedelta(milliseconds=i)) for i in range(300, 400)]
    enqueue(system, *later)
    # The release runs on the bridge's timer, batch by batch: the queues can be empty between two
    # batches while messages are still held, so wait for the hold itself to empty
    wait_until(lambda: map_status(system).held == 0, timeout=LONG, what="every held message released")
    settle(system)

    # Then the held ones went first, in the order published, and every later one after all of them
    log = [entry for entry in map_log(system, "released", "applied")]
    carried = [entry.message_id for entry in log]
    assert carried[:300] == [str(c.message_id) for c in first]
    assert sorted(carried[300:]) == sorted(str(c.message_id) for c in later)
    # And each was carried once
    assert map_status(system).applied == 400
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


# -- stop and start ------------------------------------------------------------------------------


def test_a_stopped_map_dead_letters_its_messages_with_the_reason(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the map stopped by an operator
    code, stopped = maps_cli(backend, monkeypatch, capsys, "stop", MAP, "--reason", "wrong company mapping", "--as", "ops1")
    assert code == 0 and stopped["after"] == "stopped"

    # When finance publishes a change
    change = category_change(1, datetime.now(UTC))
    enqueue(system, change)
    settle(system)

    # Then the bridge dead-letters it, saying why, and Dataverse has nothing
    [letter] = system.dead_letters(BRIDGE)
    assert letter.message_id == str(change.message_id) and letter.error_type == "MapRefused"
    assert "table map msdyn_expensecategories is stopped (wrong company mapping)" in letter.error
    assert "dualwrite maps start msdyn_expensecategories" in letter.error
    assert dataverse_categories(system) == {}
    # And the map logs the refusal, which is not a failure: the operator chose it
    assert [entry.message_id for entry in map_log(system, "refused")] == [str(change.message_id)]
    code, listed = maps_cli(backend, monkeypatch, capsys, "list")
    mine = next(each for each in listed if each["map"] == MAP)
    assert (mine["state"], mine["failed"], mine["reason"]) == ("stopped", 0, "wrong company mapping")

    # When the operator starts it again, a new change is carried
    assert maps_cli(backend, monkeypatch, capsys, "start", MAP)[1]["after"] == "running"
    again = category_change(2, datetime.now(UTC))
    enqueue(system, again)
    settle(system)
    assert dataverse_categories(system) == as_held([again])


def test_an_operator_cannot_pause_a_stopped_map_or_name_an_unknown_one(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert maps_cli(backend, monkeypatch, capsys, "stop", MAP)[0] == 0

    code, error = maps_cli(backend, monkeypatch, capsys, "pause", MAP)
    assert code == 1 and "is stopped; it cannot become paused" in error

    code, error = maps_cli(backend, monkeypatch, capsys, "pause", "msdyn_nothing")
    assert code == 2 and "no table map named 'msdyn_nothing'" in error
    assert map_status(system).state.value == "stopped"


# -- alert rules ---------------------------------------------------------------------------------


def test_ten_failures_in_fifteen_minutes_pause_the_map_and_say_why(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the default alert rule: 10 failures within 15 minutes pause a map
    assert [rule.describe() for rule in map_declaration(MAP).alerts] == ["10 failures in 15 minutes"]

    # When finance publishes 10 changes the bridge cannot read (an expense type Dataverse does not know)
    broken = []
    for index in range(10):
        envelope = category_change(index, datetime.now(UTC))
        payload = {"rows": [{**envelope.payload["rows"][0], "expense_type": "yacht"}]}
        broken.append(envelope.model_copy(update={"payload": payload}))
    enqueue(system, *broken)
    settle(system)

    # Then each is dead-lettered and counted, and the tenth paused the map with the reason
    assert len(system.dead_letters(BRIDGE)) == 10
    status = map_status(system)
    assert (status.state.value, status.failed) == ("paused", 10)
    assert status.reason.startswith("alert: 10 failures within 15 minutes (rule: 10 failures in 15 minutes); last: InvalidContract")
    assert "expense_type" in status.last_error
    [alert] = map_log(system, "alert")
    assert alert.detail == {"rule": "10 failures in 15 minutes", "failures": 10, "action": "pause"}
    assert [(s.detail["to"], s.detail["by"]) for s in map_log(system, "state")] == [("paused", "alert")]
    assert audit_actions(system) == [("alert", "map-pause", MAP)]
    code, listed = maps_cli(backend, monkeypatch, capsys, "list")
    assert next(each for each in listed if each["map"] == MAP)["reason"] == status.reason

    # And a good change that follows is held, not applied, until an operator resumes the map
    good = category_change(20, datetime.now(UTC))
    enqueue(system, good)
    settle(system)
    assert dataverse_categories(system) == {} and map_status(system).held == 1
    assert maps_cli(backend, monkeypatch, capsys, "resume", MAP, "--wait", "--timeout", str(LONG))[0] == 0
    settle(system)
    assert dataverse_categories(system) == as_held([good])


# -- map versions --------------------------------------------------------------------------------


class OldExpenseCategoryV1(Row):
    """A first version of the map's rows, before expense categories had an expense type."""

    expense_category: Code
    name: Name
    transaction_category: Code


class OldExpenseCategoriesV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("expense_category",)
    rows: Rows[OldExpenseCategoryV1]


def expense_type_added(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "rows": [{**row, "expense_type": "other"} for row in payload["rows"]]}


#: msdyn_expensecategories as if v2 (today's rows, with an expense type) had just been deployed.
TWO_VERSIONS = Contract(
    name=MSDYN_EXPENSECATEGORIES.name,
    kind=MSDYN_EXPENSECATEGORIES.kind,
    scope=MSDYN_EXPENSECATEGORIES.scope,
    versions=(OldExpenseCategoriesV1, ExpenseCategoriesV1),
    upcasters=(expense_type_added,),
)


@pytest.fixture
def system_with_v2(backend: Any) -> Iterator[System]:
    """All three sides running with msdyn_expensecategories v2 deployed; the map still runs v1."""
    registry = build_registry([TWO_VERSIONS if c.name == MAP else c for c in CONTRACTS])
    runtime = Runtime(backend.settings, registry=registry)
    try:
        for consumer in runtime.side(Side.BRIDGE).consumers:
            if consumer.endpoint.queue == OUTBOUND:
                consumer.endpoint = Endpoint(OUTBOUND, {MAP: MapCarrier(map_declaration(MAP), registry)})
        running = System(runtime, backend.name)
        runtime.create_tables()
        load_test_companies(runtime)
        runtime.start()
        yield running
    finally:
        runtime.stop()


def old_change(index: int) -> Envelope:
    envelope = category_change(index, datetime.now(UTC))
    row = {k: v for k, v in envelope.payload["rows"][0].items() if k != "expense_type"}
    return envelope.model_copy(update={"payload": {"rows": [row]}})


def test_old_version_messages_held_while_a_new_version_is_activated_are_upcast_and_applied(
    system_with_v2: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = system_with_v2
    # (the command line checks the version against the contracts deployed: v2 here)
    monkeypatch.setattr(map_control, "default_registry", lambda: system.runtime.registry)
    # Given the map runs v1 and holds two v1 changes while paused
    assert map_status(system).active_version == 1
    assert maps_cli(backend, monkeypatch, capsys, "pause", MAP)[0] == 0
    old = [old_change(1), old_change(2)]
    enqueue(system, *old)
    settle(system)
    assert map_status(system).held == 2

    # When the operator activates v2 and resumes the map
    code, activated = maps_cli(backend, monkeypatch, capsys, "activate", MAP, "--version", "2", "--as", "ops1")
    assert code == 0 and (activated["version_before"], activated["version"], activated["held"]) == (1, 2, 2)
    assert maps_cli(backend, monkeypatch, capsys, "resume", MAP, "--wait", "--timeout", str(LONG))[0] == 0
    settle(system)

    # Then both were upcast to v2 and applied: Dataverse holds them with v2's expense type
    assert dataverse_categories(system) == {
        "CAT-1": ("change 1", "TC-1", "other"),
        "CAT-2": ("change 2", "TC-2", "other"),
    }
    carried = system.outbox(BRIDGE)
    assert [json.loads(row.body)["version"] for row in carried] == [2, 2]
    assert [entry.detail["to"] for entry in map_log(system, "version")] == [2]
    assert ("ops1", "map-activate", MAP) in audit_actions(system)
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_message_newer_than_the_active_version_is_refused_until_activated(
    system_with_v2: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = system_with_v2
    # Given the map runs v1; when finance publishes a v2 change
    change = category_change(1, datetime.now(UTC), version=2)
    enqueue(system, change)
    settle(system)

    # Then it is refused with the command that would let it through, and v1 goes on as before
    [letter] = system.dead_letters(BRIDGE)
    assert letter.error_type == "VersionNotActive"
    assert "dualwrite maps activate msdyn_expensecategories --version 2" in letter.error
    enqueue(system, old_change(2))
    settle(system)
    assert [json.loads(row.body)["version"] for row in system.outbox(BRIDGE)] == [1]
    assert dataverse_categories(system) == {"CAT-2": ("change 2", "TC-2", "other")}


# -- the activity log ----------------------------------------------------------------------------


def test_maps_log_shows_what_the_map_applied_newest_first(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    changes = [category_change(i, datetime.now(UTC) + timedelta(milliseconds=i)) for i in range(3)]
    for change in changes:
        enqueue(system, change)
        settle(system)

    code, log = maps_cli(backend, monkeypatch, capsys, "log", MAP, "--limit", "2")

    assert code == 0
    assert [(entry["kind"], entry["message_id"]) for entry in log] == [
        ("applied", str(changes[2].message_id)),
        ("applied", str(changes[1].message_id)),
    ]
    assert log[0]["key"] == "legal_entity=DEMF, expense_category=CAT-2"
    assert log[0]["correlation_id"] == "expense-category:CAT-2"
    assert log[0]["detail"] == {"rows": 1, "filtered_out": 0, "version": 1}
