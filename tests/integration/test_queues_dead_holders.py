"""``dualwrite queues`` on real Redis: messages in flight told apart by who holds them, a live worker
or a dead one (its heartbeat older than ``DUALWRITE_HEARTBEAT_TIMEOUT_MS``), in the table and in
``--json``. The holders are made by hand, as three worker processes leave them: one alive, one
killed 30 s ago, one whose heartbeat is gone."""

from __future__ import annotations

import json
import time

import pytest

from contracts.queues import DATAVERSE_COMMANDS, FINANCE_COMMANDS
from shared.broker import _RedisBroker, make_broker
from shared.publisher import dramatiq_message
from shared.settings import Settings
from tests.conftest import RedisServer
from workers.cli import main
from workers.cli.exit_codes import ExitCode

HEARTBEATS = "dramatiq:__heartbeats__"
QUEUE = FINANCE_COMMANDS.name


def worker(url: str) -> _RedisBroker:
    broker = make_broker(Settings(broker_url=url))
    assert isinstance(broker, _RedisBroker)
    return broker


@pytest.fixture
def holders(redis_db: RedisServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Three workers holding 1, 2 and 3 of the queue's messages; one message left ready."""
    monkeypatch.setenv("DUALWRITE_BROKER_URL", redis_db.url)
    monkeypatch.delenv("DUALWRITE_HEARTBEAT_TIMEOUT_MS", raising=False)  # the default, 10 s
    publisher = worker(redis_db.url)
    for number in range(7):
        publisher.enqueue(dramatiq_message(QUEUE, "a", f"00000000-0000-4000-8000-{number:012d}", "{}"))
    brokers = {"alive": worker(redis_db.url), "dead": worker(redis_db.url), "gone": worker(redis_db.url)}
    for count, broker in zip((1, 2, 3), brokers.values()):
        assert len(broker.fetch_with_ids(QUEUE, count)) == count
    now_ms = int(time.time() * 1000)
    client = redis_db.client
    client.zadd(HEARTBEATS, {brokers["dead"].broker_id: now_ms - 30_000})
    client.zrem(HEARTBEATS, brokers["gone"].broker_id)
    for broker in (publisher, *brokers.values()):
        broker.close()
    return {name: broker.broker_id for name, broker in brokers.items()}


@pytest.mark.redis
def test_queues_json_counts_apart_and_names_what_dead_workers_hold(holders: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["queues", "--json"]) == ExitCode.OK
    document = json.loads(capsys.readouterr().out)

    row = next(row for row in document["queues"] if row["queue"] == QUEUE)
    assert (row["ready"], row["in_flight"], row["in_flight_dead"]) == (1, 6, 5)
    by_worker = {holder["worker_id"]: holder for holder in row["in_flight_holders"]}
    assert set(by_worker) == set(holders.values())
    alive, dead, gone = (by_worker[holders[name]] for name in ("alive", "dead", "gone"))
    assert (alive["messages"], alive["dead"], alive["requeue_within_seconds"]) == (1, False, None)
    assert alive["heartbeat_age_seconds"] < 10
    assert (dead["messages"], dead["dead"]) == (2, True)
    assert 30 <= dead["heartbeat_age_seconds"] < 90
    assert 0 < dead["requeue_within_seconds"] <= 5  # the next maintenance pass of a live worker
    # No heartbeat: no pass ever finds it
    assert (gone["messages"], gone["dead"], gone["heartbeat_age_seconds"], gone["requeue_within_seconds"]) == (3, True, None, None)
    # Most first
    assert [holder["messages"] for holder in row["in_flight_holders"]] == [3, 2, 1]

    empty = next(row for row in document["queues"] if row["queue"] == DATAVERSE_COMMANDS.name)
    assert (empty["in_flight"], empty["in_flight_dead"], empty["in_flight_holders"]) == (0, 0, [])


@pytest.mark.redis
def test_queues_table_marks_what_dead_workers_hold(holders: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["queues"]) == ExitCode.OK
    table = capsys.readouterr().out

    queue_line = next(line for line in table.splitlines() if line.startswith(QUEUE + " "))
    assert "6 (5 dead)" in queue_line
    dead_section = table.split("held by dead worker processes", 1)[1]
    dead_line = next(line for line in dead_section.splitlines() if holders["dead"] in line)
    assert dead_line.split()[:3] == [QUEUE, holders["dead"], "2"]
    assert "s ago" in dead_line and "within" in dead_line
    gone_line = next(line for line in dead_section.splitlines() if holders["gone"] in line)
    assert "none" in gone_line and "not by itself" in gone_line
    assert holders["alive"] not in dead_section  # a live holder is no news
