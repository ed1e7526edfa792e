"""A table map's message refused by its TARGET side reaches the map's activity log and alert rules.

The bridge carries msdyn_projects from Dataverse to finance; finance refuses a project that is
another company's (a business rule). Its dead-letter ledger records the letter and, in the same
transaction, reports it to the bridge through finance's outbox (``bridge.map-failures``); the
bridge logs a failure with the side, the key and the reason, and ten in fifteen minutes pause the
map. On the embedded default and on real Redis + PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from contracts.catalog import default_registry
from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import BRIDGE_MAP_FAILURES, table_map
from tests.integration.support import BRIDGE, FINANCE, System, given_project, operator_signer
from tests.integration.test_table_maps import maps_cli
from workers.bridge.activity import activity_log
from workers.bridge.map_states import read_state
from workers.bridge.tables import audit_log
from workers.finance import tables as finance
from workers.operations.audit import AuditLog
from workers.operations.broker_queues import broker_queues_for
from workers.operations.dead_letter_queue import DeadLetterQueue
from workers.operations.dead_letter_records import DeadLetterLedgers
from workers.operations.dead_letter_repair import DeadLetterRepair

MAP = "msdyn_projects"
PROJECTS = table_map(MAP)
OWNER, OTHER = "DEMF", "USPM"


def project_of_other_company(version: int) -> Envelope:
    """Dataverse's row of project P-1 under USPM: finance holds P-1 as DEMF's and refuses it."""
    row = {"project_id": "P-1", "name": f"P-1 as USPM's, v{version}", "project_manager": "maria", "billable": True,
           "status": "active", "row_version": version, "row_origin": "dataverse"}
    return new_envelope(contract=MAP, version=2, source=Side.DATAVERSE, payload={"rows": [row]},
                        correlation_id=f"project:{OTHER}:P-1", legal_entity=OTHER)


def send(system: System, envelope: Envelope) -> None:
    system.put_raw(PROJECTS.outbound, envelope.model_dump_json(), str(envelope.message_id))


def map_log(system: System, *kinds: str) -> list[Any]:
    with system.database(BRIDGE).engine.connect() as connection:
        return activity_log(connection, MAP, limit=1000, kinds=kinds, oldest_first=True)


@pytest.fixture
def project_p1(system: System) -> System:
    given_project(system, OWNER, "P-1")
    return system


def test_a_refusal_by_the_target_side_is_a_failure_of_the_map(
    project_p1: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = project_p1
    # When Dataverse sends P-1 under another company, which the bridge carries and finance refuses
    refused = project_of_other_company(version=2)
    send(system, refused)
    system.settle()

    # Then finance dead-lettered it, with the reason, and reported it through its outbox
    [letter] = system.dead_letters(FINANCE)
    assert (json.loads(letter.body)["causation_id"], letter.error_type) == (str(refused.message_id), "BusinessRuleViolation")
    assert "project 'P-1' is a project of DEMF, not USPM" in letter.error
    [report] = system.outbox(FINANCE, system.database(FINANCE).messaging.outbox.c.queue_name == BRIDGE_MAP_FAILURES.name)
    assert report.sent_at is not None and system.sends[report.message_id] == 1
    assert system.applied(BRIDGE, report.message_id) == 1
    assert system.dead_letters(BRIDGE) == []

    # And the bridge logged a failure of the map with the side, the key and the reason
    [failed] = map_log(system, "failed")
    assert (failed.message_id, failed.correlation_id) == (letter.message_id, "project:USPM:P-1")
    assert failed.detail["carried"] == str(refused.message_id)
    assert failed.key == "legal_entity=USPM, project_id=P-1"
    assert failed.detail["refused_by"] == "finance"
    assert failed.detail["error"].startswith("BusinessRuleViolation: ") and "is a project of DEMF" in failed.detail["error"]
    assert failed.detail["queue"] == PROJECTS.inbound.name

    # And `maps list` counts it, with its last error; `maps log` shows it
    code, listed = maps_cli(backend, monkeypatch, capsys, "list")
    mine = next(each for each in listed if each["map"] == MAP)
    assert code == 0 and (mine["state"], mine["failed"]) == ("running", 1)
    assert mine["last_error"].startswith("refused by finance: BusinessRuleViolation: ")
    code, log = maps_cli(backend, monkeypatch, capsys, "log", MAP, "--kind", "failed")
    assert code == 0 and [(e["kind"], e["message_id"], e["key"]) for e in log] == [
        ("failed", letter.message_id, "legal_entity=USPM, project_id=P-1")
    ]


def test_ten_refusals_by_the_target_side_pause_the_map_with_the_reason(
    project_p1: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    system = project_p1
    # When finance refuses ten messages of the map (each a newer version, one after the other, so
    # the bridge carries each rather than dropping an older one as stale)
    for version in range(2, 12):
        send(system, project_of_other_company(version))
        system.settle()

    # Then the tenth paused the map, saying why
    assert len(system.dead_letters(FINANCE)) == 10
    with system.database(BRIDGE).engine.connect() as connection:
        status = read_state(connection, MAP)
    assert (status.state.value, status.failed) == ("paused", 10)
    assert status.reason.startswith(
        "alert: 10 failures within 15 minutes (rule: 10 failures in 15 minutes); last: refused by finance: BusinessRuleViolation: "
    )
    [alert] = map_log(system, "alert")
    assert alert.detail == {"rule": "10 failures in 15 minutes", "failures": 10, "action": "pause"}
    assert [(s.detail["to"], s.detail["by"]) for s in map_log(system, "state")] == [("paused", "alert")]
    audit = system.rows(BRIDGE, select(audit_log.c.operator, audit_log.c.action, audit_log.c.target))
    assert [tuple(row) for row in audit] == [("alert", "map-pause", MAP)]
    code, listed = maps_cli(backend, monkeypatch, capsys, "list")
    assert next(each for each in listed if each["map"] == MAP)["reason"] == status.reason

    # And a change that follows is held, not carried, until an operator resumes the map
    system.publish("set_project_status", [{"project_id": "P-1", "status": "closed"}], legal_entity=OWNER)
    system.settle()
    with system.database(BRIDGE).engine.connect() as connection:
        assert read_state(connection, MAP).held == 1


def test_a_refused_message_replayed_once_its_cause_is_fixed_shows_as_replayed(system: System) -> None:
    # Given P-1 as DEMF's in finance, and Dataverse's P-1 under USPM refused by finance
    given_project(system, OWNER, "P-1")
    refused = project_of_other_company(version=2)
    send(system, refused)
    system.settle()
    [letter] = system.dead_letters(FINANCE)
    [failed] = map_log(system, "failed")

    # When an operator fixes the cause (finance's stray P-1 removed) and replays the letter
    with system.database(FINANCE).engine.begin() as connection:
        connection.execute(finance.projects.delete().where(finance.projects.c.project_id == "P-1"))
    ledgers = DeadLetterLedgers({side.value: system.database(side) for side in system.runtime.sides})
    broker_queues = broker_queues_for(system.runtime.broker, system.runtime.settings.broker_url)
    try:
        [group] = DeadLetterQueue(ledgers, broker_queues).groups()
        repair = DeadLetterRepair(ledgers, broker_queues, default_registry(), AuditLog(system.database(BRIDGE)), "dana", signer=operator_signer(system))
        report = repair.replay(list(group.letters), f"group {group.group_id}")
    finally:
        broker_queues.close()
    assert report.done == [letter.message_id]
    system.settle()

    # Then finance applied it once, and the map's log shows it replayed after the failure
    assert system.applied(FINANCE, letter.message_id) == 1
    [row] = system.rows(FINANCE, select(finance.projects.c.legal_entity, finance.projects.c.name))
    assert tuple(row) == (OTHER, "P-1 as USPM's, v2")
    [replayed] = map_log(system, "replayed")
    assert (replayed.message_id, replayed.key) == (letter.message_id, "legal_entity=USPM, project_id=P-1")
    assert replayed.detail["applied_by"] == "finance" and replayed.detail["carried"] == str(refused.message_id)
    assert replayed.detail["had_failed"] == failed.detail["error"]
    assert replayed.id > failed.id
    # And the failure stays counted: it happened
    with system.database(BRIDGE).engine.connect() as connection:
        assert read_state(connection, MAP).failed == 1
    assert system.dead_letters(BRIDGE) == []


@pytest.mark.parametrize("state", ["pause", "stop"])
def test_a_refusal_reported_while_the_map_is_paused_or_stopped_is_still_counted(
    system: System, backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    # Given the map paused (or stopped) by an operator after it carried a message that finance refuses
    code, _ = maps_cli(backend, monkeypatch, capsys, state, MAP)
    assert code == 0
    refused_id = "5a1c3d4e-0000-4000-8000-000000000001"
    report = new_envelope(
        contract="map_failure_report", version=1, source=Side.FINANCE, correlation_id="project:USPM:P-1",
        payload={"rows": [{
            "table_map": MAP, "side": "finance", "queue": PROJECTS.inbound.name, "message_id": refused_id,
            "correlation_id": "project:USPM:P-1", "legal_entity": OTHER, "keys": ["legal_entity=USPM, project_id=P-1"],
            "error_type": "BusinessRuleViolation", "error": "project 'P-1' is a project of DEMF, not USPM",
            "dead_at": "2026-11-26T02:30:00+00:00",
        }]},
    )

    # When finance's report of it reaches the bridge
    system.put_raw(BRIDGE_MAP_FAILURES, report.model_dump_json(), str(report.message_id))
    system.settle()

    # Then it is logged and counted as the map's failure all the same, and the map keeps its state
    assert system.dead_letters(BRIDGE) == []
    [failed] = map_log(system, "failed")
    assert (failed.message_id, failed.detail["refused_by"]) == (refused_id, "finance")
    with system.database(BRIDGE).engine.connect() as connection:
        status = read_state(connection, MAP)
    assert (status.state.value, status.failed) == ({"pause": "paused", "stop": "stopped"}[state], 1)
    assert status.last_error.startswith("refused by finance: BusinessRuleViolation: ")
