"""Finding lost parts hop by hop, and handing them back to their senders' outboxes (on SQLite files)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from contracts.queues import table_map
from shared.metrics import Metrics
from shared.settings import Settings
from shared.side import open_database
from shared.side_database import SideDatabase
from workers.bridge.tables import held_messages
from workers.operations.audit import AuditLog
from workers.operations.lost_messages import AUDIT_ACTION, Repair, check_deliveries, repair_lost_messages, resend
from workers.runtime import SPECS

EXPENSES = table_map("msdyn_expenses")
TO_DATAVERSE, TO_BRIDGE = EXPENSES.inbound.name, EXPENSES.outbound.name
NOW = datetime.now(UTC)
#: Well past the bound of 60 s the tests use, well within their lookback of an hour.
LONG_AGO = NOW - timedelta(minutes=10)


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, SideDatabase]]:
    settings = Settings(data_dir=tmp_path, finance_db_url=None, dataverse_db_url=None, bridge_db_url=None)
    opened = {side.value: open_database(spec, settings) for side, spec in SPECS.items()}
    for database in opened.values():
        database.create_tables()
    yield opened
    for database in opened.values():
        database.dispose()


def sent(database: SideDatabase, queue_name: str, *, at: datetime = LONG_AGO, message_id: str | None = None) -> str:
    message_id = message_id or str(uuid.uuid4())
    with database.engine.begin() as connection:
        connection.execute(
            database.messaging.outbox.insert(),
            {
                "message_id": message_id, "queue_name": queue_name, "actor_name": "receive", "contract": "msdyn_expenses",
                "correlation_id": "c", "body": "{}", "created_at": at, "sent_at": at,
            },
        )
    return message_id


def applied(database: SideDatabase, message_id: str, queue_name: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            database.messaging.inbox.insert(),
            {
                "message_id": message_id, "contract": "msdyn_expenses", "version": 1, "queue_name": queue_name,
                "source": "bridge", "correlation_id": "c", "rows": 1, "started_at": NOW, "finished_at": NOW,
            },
        )


def combined_body(*part_ids: str) -> str:
    return json.dumps({"message_id": str(uuid.uuid4()), "parts": [{"message_id": part} for part in part_ids]})


def sent_at(database: SideDatabase, message_id: str) -> datetime | None:
    outbox = database.messaging.outbox
    with database.engine.connect() as connection:
        return connection.scalar(select(outbox.c.sent_at).where(outbox.c.message_id == message_id))


def test_only_parts_that_are_nowhere_count_as_lost(databases: dict[str, SideDatabase]) -> None:
    bridge, dataverse, finance = databases["bridge"], databases["dataverse"], databases["finance"]
    arrived, dead, on_broker, lost = (sent(bridge, TO_DATAVERSE) for _ in range(4))
    applied(dataverse, arrived, TO_DATAVERSE)
    with dataverse.engine.begin() as connection:  # dead-lettered inside a combined message
        connection.execute(
            dataverse.messaging.dead_letters.insert(),
            {
                "message_id": str(uuid.uuid4()), "queue_name": TO_DATAVERSE, "actor_name": "receive", "error_kind": "permanent",
                "error_type": "Refused", "error": "no", "attempts": 1, "body": combined_body("other", dead), "dead_at": NOW,
            },
        )
    held = sent(finance, TO_BRIDGE)
    with bridge.engine.begin() as connection:
        connection.execute(
            held_messages.insert(),
            {
                "map": EXPENSES.name, "message_id": str(uuid.uuid4()), "contract": "msdyn_expenses", "version": 1,
                "correlation_id": "c", "published_at": NOW, "body": combined_body(held), "held_at": NOW,
            },
        )
    stranger = sent(finance, "nobody.listens")

    check = check_deliveries(databases, older_than=60, lookback=3600, parts_on_queue=lambda name: frozenset({on_broker}))

    by_queue = {each.queue: each for each in check.queues}
    hop = by_queue[TO_DATAVERSE]
    assert (hop.sender, hop.receiver, hop.sent, hop.applied, hop.dead_lettered, hop.on_broker) == ("bridge", "dataverse", 4, 1, 1, 1)
    assert hop.lost == [lost]
    assert (by_queue[TO_BRIDGE].held, by_queue[TO_BRIDGE].lost) == (1, [])
    assert check.unknown_queues == {"nobody.listens": 1} and stranger
    assert check.lost == 1 and len(check.problems()) == 1


def test_parts_sent_within_the_bound_or_before_the_lookback_are_not_checked(databases: dict[str, SideDatabase]) -> None:
    bridge = databases["bridge"]
    now = datetime.now(UTC)
    sent(bridge, TO_DATAVERSE, at=now - timedelta(seconds=10))
    sent(bridge, TO_DATAVERSE, at=now - timedelta(days=2))
    unsent = sent(bridge, TO_DATAVERSE)
    with bridge.engine.begin() as connection:
        outbox = bridge.messaging.outbox
        connection.execute(outbox.update().where(outbox.c.message_id == unsent).values(sent_at=None))

    check = check_deliveries(databases, older_than=60, lookback=86_400, now=now)

    assert check.queues == [] and check.lost == 0


def test_a_lost_part_is_handed_back_to_its_outbox_once_however_many_repairs_found_it(databases: dict[str, SideDatabase]) -> None:
    bridge = databases["bridge"]
    lost = sent(bridge, TO_DATAVERSE)
    first = check_deliveries(databases, older_than=60, lookback=3600)
    second = check_deliveries(databases, older_than=60, lookback=3600)

    resend(databases, first)
    resend(databases, second)

    assert (first.resent, second.resent) == (1, 0)
    assert sent_at(bridge, lost) is None  # the bridge's sweeper sends it at its next run
    # Sent again since (sent_at recent): a repair that found it lost before does not touch it.
    with bridge.engine.begin() as connection:
        outbox = bridge.messaging.outbox
        connection.execute(outbox.update().where(outbox.c.message_id == lost).values(sent_at=datetime.now(UTC)))
    resend(databases, first)
    assert first.resent == 1 and sent_at(bridge, lost) is not None


def test_a_repair_is_audited_and_counted_and_a_dry_run_changes_nothing(databases: dict[str, SideDatabase]) -> None:
    bridge = databases["bridge"]
    lost = sent(bridge, TO_DATAVERSE)
    metrics = Metrics()

    dry = repair_lost_messages(databases, Repair(older_than=60, lookback=3600, operator="ops", dry_run=True), metrics=metrics)
    assert (dry.lost, dry.resent) == (1, 0) and sent_at(bridge, lost) is not None

    done = repair_lost_messages(databases, Repair(older_than=60, lookback=3600, operator="ops"), metrics=metrics)
    assert (done.lost, done.resent) == (1, 1) and sent_at(bridge, lost) is None
    labels = {"side": "bridge", "queue": TO_DATAVERSE, "receiver": "dataverse"}
    assert metrics.registry.get_sample_value("dualwrite_lost_messages_resent_total", labels) == 1

    # A periodic run that finds nothing writes no audit entry; an operator's runs always do.
    quiet = repair_lost_messages(databases, Repair(older_than=60, lookback=3600, operator="periodic check", audit_every_run=False, automatic=True))
    assert (quiet.lost, quiet.resent) == (0, 0)
    entries = [e for e in AuditLog(bridge).recent() if e.action == AUDIT_ACTION]
    assert [(e.operator, e.count, e.details["dry_run"], e.target) for e in entries] == [
        ("ops", 1, False, TO_DATAVERSE),
        ("ops", 0, True, TO_DATAVERSE),
    ]
    assert entries[0].details["queues"][TO_DATAVERSE]["parts"] == [lost]
