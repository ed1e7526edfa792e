"""Two bridge worker processes side by side (as ``BRIDGE_REPLICAS=2`` runs them), on Redis and PostgreSQL.

The other tiers run the bridge's carriers as threads of one process; here two ``dualwrite worker
bridge`` processes share the queues, the bridge database and its locks:

- a paused map holds 300 changes that reach both bridges shuffled; resumed, they are released in the
  order published and Dataverse (one consumer thread) applies them in that order, each once;
- the two-way ``msdyn_projects`` carries finance's renames to Dataverse and Dataverse's closures to
  finance through both processes: both sides end with the same newest version of every project, and
  no message was carried twice.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.envelope import Envelope, Side, new_envelope
from contracts.queues import table_map
from tests.e2e.brokers import Broker, signature_options
from tests.e2e.deployment import LocalDeployment
from workers.bridge import tables as bridge
from workers.bridge.row_versions import two_way_rows
from workers.dataverse import tables as dataverse
from workers.demo.expense_steps import SETUP_FILE
from workers.finance import tables as finance

CATEGORIES = table_map("msdyn_expensecategories")
PROJECTS = table_map("msdyn_projects")
COMPANY = "DEMF"
CHANGES = 300
PROJECT_IDS = [f"P-{number:02d}" for number in range(1, 21)]
CLOSED = PROJECT_IDS[:5]


def category_change(index: int, published_at: datetime) -> Envelope:
    row = {"expense_category": f"CAT-{index % 3}", "name": f"change {index}", "transaction_category": f"TC-{index % 7}",
           "expense_type": ("hotel", "meals", "airline", "transport", "other")[index % 5]}
    envelope = new_envelope(contract=CATEGORIES.name, version=1, source=Side.FINANCE, payload={"rows": [row]},
                            correlation_id=f"e2e:category:{row['expense_category']}", legal_entity=COMPANY)
    return envelope.model_copy(update={"occurred_at": published_at})


def count(deployment: LocalDeployment, side: str, table: Any, *criteria: Any) -> int:
    rows = deployment.rows(side, select(func.count()).select_from(table).where(*criteria))
    return rows[0][0] if rows else 0


def projects(deployment: LocalDeployment, side: str) -> dict[str, tuple[Any, ...]]:
    table = (finance if side == "finance" else dataverse).projects
    rows = deployment.rows(side, select(table.c.project_id, table.c.name, table.c.status, table.c.row_version, table.c.row_origin))
    return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.postgres
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_two_bridge_processes_release_in_order_and_carry_a_two_way_map_once(
    local_deployment: LocalDeployment, broker: Broker
) -> None:
    deployment = local_deployment
    deployment.run_cli("db", "upgrade")
    deployment.run_cli("setup", str(SETUP_FILE))  # finance's companies, DEMF among them
    # One consumer thread on each side: each applies messages in the order they were queued
    deployment.start("finance", ["dualwrite", "worker", "finance", "--threads", "1"])
    deployment.start("dataverse", ["dualwrite", "worker", "dataverse", "--threads", "1"])
    deployment.start("bridge-1", ["dualwrite", "worker", "bridge", "--threads", "4"])
    deployment.start("bridge-2", ["dualwrite", "worker", "bridge", "--threads", "4"])
    deployment.wait_for_key_ring()  # the test signs as finance with the key the first of them makes

    # -- a paused map, resumed --------------------------------------------------------------------
    # Given msdyn_expensecategories paused, and 300 changes to three categories reaching the bridges shuffled
    assert deployment.run_cli("maps", "pause", CATEGORIES.name, "--as", "e2e")["after"] == "paused"
    start = datetime.now(UTC) - timedelta(minutes=1)
    changes = [category_change(i, start + timedelta(milliseconds=i)) for i in range(CHANGES)]
    for change in random.Random(7).sample(changes, len(changes)):
        body = change.model_dump_json()
        signature = signature_options(deployment.keys_dir, "finance", body)
        broker.publish_plain(body, CATEGORIES.outbound.name, CATEGORIES.outbound.actor_name, signature)
    deployment.wait_for("300 changes held", lambda: count(deployment, "bridge", bridge.held_messages) == CHANGES)
    assert count(deployment, "dataverse", dataverse.expense_categories) == 0

    # When the operator resumes it
    resumed = deployment.run_cli("maps", "resume", CATEGORIES.name, "--wait", "--timeout", "60", "--as", "e2e")
    assert (resumed["before"], resumed["after"], resumed["held"]) == ("paused", "running", 0)
    inbound = dataverse.messaging.inbox.c.queue_name == CATEGORIES.inbound.name
    deployment.wait_for("Dataverse applied 300 changes", lambda: count(deployment, "dataverse", dataverse.messaging.inbox, inbound) == CHANGES)

    # Then the bridges released each once, in the order published, and Dataverse applied them in that order
    activity = bridge.map_activity
    released = [row[0] for row in deployment.rows(
        "bridge", select(activity.c.message_id).where(activity.c.map == CATEGORIES.name, activity.c.kind == "released").order_by(activity.c.id)
    )]
    published = [str(change.message_id) for change in changes]
    assert released == published
    # (released changes may travel several to a message, each of another category: a message's
    # parts commit together, so within one message the order is the message's own)
    inbox = dataverse.messaging.inbox
    position = {message_id: index for index, message_id in enumerate(published)}
    messages: dict[str, list[str]] = {}
    for causation_id, carried_by in deployment.rows(
        "dataverse", select(inbox.c.causation_id, inbox.c.carried_by).where(inbound).order_by(inbox.c.finished_at)
    ):
        messages.setdefault(carried_by, []).append(causation_id)
    applied = [change for parts in messages.values() for change in sorted(parts, key=position.__getitem__)]
    assert applied == published
    table = dataverse.expense_categories
    held = {row[0]: row[1] for row in deployment.rows("dataverse", select(table.c.expense_category, table.c.name))}
    assert held == {"CAT-0": "change 297", "CAT-1": "change 298", "CAT-2": "change 299"}

    # -- a two-way map ------------------------------------------------------------------------------
    # Given 20 projects created in Dataverse and carried to finance
    deployment.publish("create_projects", [{"project_id": p, "name": f"Project {p}", "project_manager": "maria", "billable": True}
                                           for p in PROJECT_IDS], "--legal-entity", COMPANY)
    deployment.wait_for("finance holds the 20 projects", lambda: len(projects(deployment, "finance")) == 20)

    # When finance renames every one twice, then Dataverse closes five once the renames reached it
    for name in ("Renamed once", "Renamed twice"):
        deployment.publish("update_projects", [{"project_id": p, "name": name} for p in PROJECT_IDS], "--legal-entity", COMPANY)
    deployment.wait_for(
        "Dataverse holds finance's second rename",
        lambda: {row[0] for row in projects(deployment, "dataverse").values()} == {"Renamed twice"},
    )
    deployment.publish("set_project_status", [{"project_id": p, "status": "closed"} for p in CLOSED], "--legal-entity", COMPANY)

    # Then both sides hold the newest version of every project: finance's renames, Dataverse's closures
    expected = {p: ("Renamed twice", "closed" if p in CLOSED else "active", 4 if p in CLOSED else 3,
                    "dataverse" if p in CLOSED else "finance") for p in PROJECT_IDS}
    deployment.wait_for("finance holds the closures", lambda: projects(deployment, "finance") == expected)
    assert projects(deployment, "dataverse") == expected
    carried = {row[0]: (row[1], row[2]) for row in deployment.rows("bridge", select(two_way_rows.c.key, two_way_rows.c.row_version, two_way_rows.c.row_origin))}
    assert carried == {f'["{COMPANY}","{p}"]': expected[p][2:] for p in PROJECT_IDS}

    # And no message was carried twice, none echoed, none in conflict, nothing dead-lettered
    lines = deployment.rows("bridge", select(activity.c.kind, activity.c.message_id).where(activity.c.map == PROJECTS.name))
    kinds = Counter(kind for kind, _ in lines)
    assert not {"echo", "conflict", "failed", "refused"} & set(kinds), kinds
    applied_ids = Counter(message_id for kind, message_id in lines if kind == "applied")
    assert applied_ids and max(applied_ids.values()) == 1
    bridge_inbox = bridge.messaging.inbox
    assert count(deployment, "bridge", bridge_inbox, bridge_inbox.c.contract == PROJECTS.name) == sum(applied_ids.values())
    for side, tables in (("finance", finance), ("dataverse", dataverse), ("bridge", bridge)):
        assert deployment.rows(side, select(tables.messaging.dead_letters.c.error)) == [], side

    # And both bridge processes carried messages, and every worker stops cleanly
    for name in ("bridge-1", "bridge-2"):
        log = next(worker for worker in deployment.workers if worker.side == name).log_path.read_text()
        assert "message applied" in log, f"{name} carried nothing"
    statuses = deployment.terminate()
    assert statuses == {"finance": 0, "dataverse": 0, "bridge-1": 0, "bridge-2": 0}, {w.side: w.log_tail() for w in deployment.workers}
