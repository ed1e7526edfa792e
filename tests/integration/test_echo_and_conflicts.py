"""Echo and conflicts on the two-way map msdyn_projects (Dataverse masters, finance may rename,
close or reopen a project), on the embedded default and on real Redis + PostgreSQL.

- A change that arrived through the bridge is not sent back: the side that applied it publishes
  nothing, and a would-be echo (the same version sent back) is dropped by the bridge and logged.
- When both sides change a project from the same version, Dataverse (the master) wins on both
  sides, whichever change reaches the bridge first, and the bridge logs the losing change.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from contracts.envelope import Side, new_envelope
from contracts.queues import table_map
from shared.waiting import wait_until
from tests.integration.support import BRIDGE, DATAVERSE, FINANCE, System, given_project
from workers.bridge.activity import activity_log
from workers.bridge.map_states import MapState, change_state, read_state
from workers.bridge.row_versions import two_way_rows
from workers.dataverse import tables as dataverse
from workers.finance import tables as finance

MAP = "msdyn_projects"
PROJECTS = table_map(MAP)
COMPANY = "DEMF"
PROJECT = "P-1"
KEY = json.dumps([COMPANY, PROJECT], separators=(",", ":"))


# -- looking at each side ------------------------------------------------------------------------


def project(system: System, side: Side) -> tuple[str, str, int, str]:
    """(name, status, row version, row origin) of the project as ``side`` holds it."""
    table = (finance if side is FINANCE else dataverse).projects
    [row] = system.rows(
        side,
        select(table.c.name, table.c.status, table.c.row_version, table.c.row_origin).where(table.c.project_id == PROJECT),
    )
    return tuple(row)


def carried_by_bridge(system: System) -> tuple[int, str]:
    [row] = system.rows(BRIDGE, select(two_way_rows.c.row_version, two_way_rows.c.row_origin).where(two_way_rows.c.key == KEY))
    return tuple(row)


def map_log(system: System, *kinds: str) -> list[Any]:
    with system.database(BRIDGE).engine.connect() as connection:
        return activity_log(connection, MAP, limit=1000, kinds=kinds, oldest_first=True)


def messages_on(system: System, side: Side, queue_name: str) -> int:
    """Messages ``side`` wrote to its outbox for a queue (what it published there)."""
    return len(system.outbox(side, system.database(side).messaging.outbox.c.queue_name == queue_name))


def received_on(system: System, side: Side, queue_name: str) -> int:
    return len(system.inbox(side, system.database(side).messaging.inbox.c.queue_name == queue_name))


def set_state(system: System, state: MapState) -> None:
    with system.database(BRIDGE).engine.begin() as connection:
        change_state(connection, MAP, state, reason="echo and conflict test", by="test")


def held(system: System) -> int:
    with system.database(BRIDGE).engine.connect() as connection:
        return read_state(connection, MAP).held


# -- acting as each side's upstream --------------------------------------------------------------


def dataverse_closes(system: System) -> None:
    system.publish("set_project_status", [{"project_id": PROJECT, "status": "closed"}], legal_entity=COMPANY)


def finance_renames(system: System, name: str) -> None:
    system.publish("update_projects", [{"project_id": PROJECT, "name": name}], legal_entity=COMPANY)


@pytest.fixture
def project_p1(system: System) -> System:
    """Project P-1 created in Dataverse and carried to finance: version 1, Dataverse's, on both sides."""
    given_project(system, COMPANY, PROJECT)
    assert project(system, DATAVERSE) == project(system, FINANCE) == ("Project P-1", "active", 1, "dataverse")
    return system


# -- echo ----------------------------------------------------------------------------------------


def test_a_change_in_dataverse_reaches_finance_and_is_not_sent_back(project_p1: System) -> None:
    system = project_p1

    # When Dataverse closes the project
    dataverse_closes(system)
    system.settle()

    # Then finance holds Dataverse's version 2, as it came
    assert project(system, FINANCE) == ("Project P-1", "closed", 2, "dataverse")
    assert project(system, DATAVERSE) == ("Project P-1", "closed", 2, "dataverse")
    assert carried_by_bridge(system) == (2, "dataverse")
    # And finance sent nothing back: no message on the reverse queue, none reached Dataverse
    assert messages_on(system, FINANCE, PROJECTS.reverse_outbound.name) == 0
    assert received_on(system, BRIDGE, PROJECTS.reverse_outbound.name) == 0
    assert received_on(system, DATAVERSE, PROJECTS.reverse_inbound.name) == 0

    # When a finance that did echo (as a side re-publishing every row it writes would) sends the row back
    echo = new_envelope(
        contract=MAP, version=2, source=Side.FINANCE, legal_entity=COMPANY, correlation_id="echo:P-1",
        payload={"rows": [{"project_id": PROJECT, "name": "Project P-1", "project_manager": "maria",
                           "billable": True, "status": "closed", "row_version": 2, "row_origin": "dataverse"}]},
    )
    system.put_raw(PROJECTS.reverse_outbound, echo.model_dump_json(), str(echo.message_id))
    system.settle()

    # Then the bridge dropped it: nothing reached Dataverse, and the activity log says so
    assert system.applied(BRIDGE, echo.message_id) == 1
    assert received_on(system, DATAVERSE, PROJECTS.reverse_inbound.name) == 0
    [entry] = map_log(system, "echo")
    assert (entry.message_id, entry.key) == (str(echo.message_id), KEY)
    assert (entry.detail["version"], entry.detail["origin"], entry.detail["sent_by"]) == (2, "dataverse", "finance")
    assert carried_by_bridge(system) == (2, "dataverse")
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}


def test_a_change_in_finance_reaches_dataverse_and_is_not_sent_back(project_p1: System) -> None:
    system = project_p1
    sent_by_dataverse = messages_on(system, DATAVERSE, PROJECTS.outbound.name)

    # When finance renames the project
    finance_renames(system, "Audit 2026")
    system.settle()

    # Then Dataverse holds finance's version 2 (its manager and billable flag untouched)
    assert project(system, DATAVERSE) == ("Audit 2026", "active", 2, "finance")
    assert project(system, FINANCE) == ("Audit 2026", "active", 2, "finance")
    [row] = system.rows(DATAVERSE, select(dataverse.projects.c.project_manager, dataverse.projects.c.billable))
    assert tuple(row) == ("maria", True)
    # And only the two-way fields travelled back: the bridge dropped the manager and billable flag
    [carried] = [json.loads(row.body) for row in system.outbox(BRIDGE) if row.queue_name == PROJECTS.reverse_inbound.name]
    assert carried["payload"]["rows"] == [
        {"project_id": PROJECT, "name": "Audit 2026", "project_manager": None, "billable": None,
         "status": "active", "row_version": 2, "row_origin": "finance"}
    ]
    # And Dataverse sent nothing back
    assert messages_on(system, DATAVERSE, PROJECTS.outbound.name) == sent_by_dataverse
    assert map_log(system, "echo", "conflict") == []

    # When Dataverse then closes it: its change is based on finance's version, no conflict
    dataverse_closes(system)
    system.settle()
    assert project(system, FINANCE) == project(system, DATAVERSE) == ("Audit 2026", "closed", 3, "dataverse")
    assert map_log(system, "echo", "conflict") == []


def test_a_rename_that_changes_nothing_makes_no_version_and_sends_nothing(project_p1: System) -> None:
    system = project_p1
    finance_renames(system, "Project P-1")
    system.settle()
    assert project(system, FINANCE) == ("Project P-1", "active", 1, "dataverse")
    assert messages_on(system, FINANCE, PROJECTS.reverse_outbound.name) == 0


# -- conflicts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["dataverse", "finance"])
def test_a_concurrent_change_on_both_sides_ends_with_the_master_s_values_and_logs_the_loser(
    project_p1: System, first: str
) -> None:
    system = project_p1
    # Given the map paused, so that both changes are made from version 1 before either is carried
    set_state(system, MapState.PAUSED)

    # When both sides change the project, one after the other
    changes = {"dataverse": lambda: dataverse_closes(system), "finance": lambda: finance_renames(system, "Renamed in finance")}
    for side in (first, "finance" if first == "dataverse" else "dataverse"):
        changes[side]()
        system.settle()
    assert project(system, DATAVERSE) == ("Project P-1", "closed", 2, "dataverse")
    assert project(system, FINANCE) == ("Renamed in finance", "active", 2, "finance")
    assert held(system) == 2

    # And the map is resumed: the bridge releases both in the order they were published
    set_state(system, MapState.RUNNING)
    wait_until(lambda: held(system) == 0, timeout=20, what="held changes released")
    system.settle()

    # Then both sides hold the master's change: Dataverse's version 2
    assert project(system, DATAVERSE) == ("Project P-1", "closed", 2, "dataverse")
    assert project(system, FINANCE) == ("Project P-1", "closed", 2, "dataverse")
    assert carried_by_bridge(system) == (2, "dataverse")
    # And the activity log records the conflict once, naming finance's change as the loser
    [conflict] = map_log(system, "conflict")
    assert conflict.key == KEY
    assert conflict.detail["lost"] == "finance"
    assert conflict.detail["winner"] == {"version": 2, "origin": "dataverse"}
    assert conflict.detail["loser"] == {"version": 2, "origin": "finance"}
    # Master first: finance's change was dropped; finance first: it was carried, then overwritten
    assert conflict.detail["carried"] is (first == "finance")
    assert received_on(system, DATAVERSE, PROJECTS.reverse_inbound.name) == (1 if first == "finance" else 0)
    assert system.all_dead_letters() == {"dataverse": [], "bridge": [], "finance": []}
