"""A SIGKILLed worker's messages are applied by another, exactly once, with the product's defaults.

Real processes (``python -m workers worker dataverse --processes 2``) on Redis and on RabbitMQ,
with PostgreSQL, and NO override of the heartbeat timeout or of the maintenance settings:

1. upstream's commands wait on Dataverse's queue; a first worker takes them while the test holds
   an EXCLUSIVE lock on the table they write, so its batches wait in their transactions, in flight;
2. the whole worker (supervisor and children) is SIGKILLed: nothing was committed;
3. Redis: ``dualwrite queues`` shows the messages held by dead workers, named by the ids the killed
   processes logged in ``worker started`` (RabbitMQ has them back on the queue at once);
4. a second worker applies every command exactly once (inbox rows, rows written, no dead letter;
   on Redis within about 12 s of the kill: the 10 s heartbeat timeout and a maintenance pass every
   2 s; the wait's deadline is far above that and the time is printed, never asserted).

Every life-cycle line names its process: ``worker started``, ``stopping``, ``worker stopped`` the
worker process's pid, and the supervisor's lines its own pid and the child's (``child_pid``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from contracts.envelope import Side
from contracts.queues import DATAVERSE_COMMANDS
from shared import migrations
from shared.side_database import SideDatabase
from shared.waiting import wait_until
from tests.e2e.brokers import Broker
from tests.in_process_cli import run_dualwrite
from workers.bench.measure import descendants
from workers.dataverse import tables as dv
from workers.runtime import SPECS

#: In the default run; `-m scale` selects this file's tests (and the other multi-process ones) alone.
pytestmark = [pytest.mark.scale, pytest.mark.postgres]

COMMANDS = 6
ROWS = 3
PROCESSES = 2
TIMEOUT = 60.0
#: Far above the ~12 s a dead worker's messages take to come back on Redis with the defaults.
RECOVERY_DEADLINE = 120.0


class Worker:
    """``python -m workers worker dataverse --processes 2`` in a session of its own, logging to a file."""

    def __init__(self, environment: dict[str, str], folder: Path, name: str) -> None:
        self.log_path = folder / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "workers", "worker", "dataverse", "--processes", str(PROCESSES), "--threads", "2"],
                env=environment, cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                parsed = json.loads(line)
            except ValueError:  # a traceback, a stack dump
                continue
            if isinstance(parsed, dict) and (event is None or parsed.get("event") == event):
                found.append(parsed)
        return found

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-count:])

    def worker_processes(self) -> set[int]:
        """The supervisor's worker processes (not multiprocessing's resource tracker)."""
        found = set()
        for pid in descendants(self.popen.pid):
            try:
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                continue
        return found

    def check_alive(self) -> None:
        assert self.popen.poll() is None, f"the worker exited {self.popen.returncode}:\n{self.tail()}"

    def kill(self) -> None:
        """SIGKILL to the supervisor and every process it started, as a container runtime kills them."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=TIMEOUT)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


@pytest.fixture
def dataverse(postgres_server: Any) -> Iterator[SideDatabase]:
    postgres_server.reset()
    spec = SPECS[Side.DATAVERSE]
    database = SideDatabase.open("dataverse", postgres_server.urls["dataverse"], spec.metadata, spec.messaging, pool_size=2)
    migrations.upgrade(database)  # as `dualwrite db upgrade` does before the workers start
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    """The workers the test starts, each stopped (or killed) at the end."""
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            if worker.popen.poll() is None:
                try:
                    worker.stop()
                except subprocess.TimeoutExpired:
                    pass


def environment_for(broker: Broker, postgres_server: Any, keys_dir: Path) -> dict[str, str]:
    """The product's defaults (no DUALWRITE_HEARTBEAT_TIMEOUT_MS, no DUALWRITE_REDIS_MAINTENANCE_CHANCE)."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(
        {
            "DUALWRITE_BROKER_URL": broker.url,
            "DUALWRITE_KEYS_DIR": str(keys_dir),
            "DUALWRITE_DATAVERSE_DB_URL": postgres_server.urls["dataverse"],
            "DUALWRITE_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return environment


@contextmanager
def held_table(database: SideDatabase, table_name: str) -> Iterator[None]:
    """An EXCLUSIVE lock on the table (reads pass, writes wait): every batch writing it waits, in flight."""
    with database.engine.connect() as connection:
        with connection.begin():
            connection.execute(text(f"LOCK TABLE {table_name} IN EXCLUSIVE MODE"))
            yield


def waiting_on(database: SideDatabase, table_name: str) -> int:
    query = text(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) AND relation = to_regclass(:name)"
    )
    with database.engine.connect() as connection:
        return connection.scalar(query, {"name": table_name}) or 0


def count(database: SideDatabase, table: Any) -> int:
    with database.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table)) or 0


def queues(environment: dict[str, str], folder: Path, *json_flag: str) -> Any:
    done = run_dualwrite(["queues", *json_flag], environment, cwd=folder)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if json_flag else done.stdout


def commands_row(environment: dict[str, str], folder: Path) -> dict[str, Any]:
    document = queues(environment, folder, "--json")
    return next(row for row in document["queues"] if row["queue"] == DATAVERSE_COMMANDS.name)


def assert_life_cycle_lines_name_their_processes(worker: Worker, children: set[int]) -> None:
    supervisor = worker.popen.pid
    started = worker.lines("worker started")
    assert {line["pid"] for line in started} == children, worker.tail()
    spawned = worker.lines("worker process started")
    assert {line["child_pid"] for line in spawned} >= children
    assert {line["pid"] for line in spawned} == {supervisor}


def test_a_sigkilled_workers_messages_are_applied_once_by_another_with_the_defaults(
    broker: Broker, postgres_server: Any, dataverse: SideDatabase, workers: list[Worker], tmp_path: Path
) -> None:
    redis = broker.name == "redis"
    environment = environment_for(broker, postgres_server, tmp_path / "keys")
    inbox, dead_letters = dataverse.messaging.inbox, dataverse.messaging.dead_letters
    table = dv.transaction_categories.name

    # Given upstream's commands waiting on Dataverse's queue
    for number in range(COMMANDS):
        document = tmp_path / f"categories-{number}.json"
        rows = [{"category": f"K{number}-{row}", "name": f"Category {number}.{row}"} for row in range(ROWS)]
        document.write_text(json.dumps({"rows": rows}))
        published = run_dualwrite(["publish", "create_transaction_categories", str(document), "--json"], environment, cwd=tmp_path)
        assert published.returncode == 0, published.stderr

    # And a worker that took them, its batches waiting on the table in their transactions
    with held_table(dataverse, table):
        first = Worker(environment, tmp_path, "first")
        workers.append(first)

        def started_and_in_flight() -> bool:
            first.check_alive()
            return len(first.lines("worker started")) == PROCESSES and waiting_on(dataverse, table) > 0

        wait_until(started_and_in_flight, timeout=TIMEOUT, interval=0.1, what="the first worker's batches in flight")
        children = first.worker_processes()
        assert len(children) == PROCESSES
        assert_life_cycle_lines_name_their_processes(first, children)
        logged_ids = {line["redis_worker_id"] for line in first.lines("worker started")}
        if redis:
            row = commands_row(environment, tmp_path)
            assert row["in_flight"] > 0 and row["in_flight_dead"] == 0, row
            assert {holder["worker_id"] for holder in row["in_flight_holders"]} <= logged_ids

        # When the whole worker is SIGKILLed
        first.kill()
        killed_at = time.monotonic()
    assert count(dataverse, inbox) == 0, "a killed worker's batch was committed"

    if redis:
        # Then the operator sees the messages held by dead workers, and by which (10 s of silence)
        def all_held_by_the_dead() -> dict[str, Any] | None:
            row = commands_row(environment, tmp_path)
            return row if row["in_flight"] and row["in_flight_dead"] == row["in_flight"] else None

        row = wait_until(all_held_by_the_dead, timeout=TIMEOUT, interval=0.5, what="the killed worker's messages marked dead")
        assert {holder["worker_id"] for holder in row["in_flight_holders"]} <= logged_ids
        assert all(holder["dead"] and holder["heartbeat_age_seconds"] >= 10 for holder in row["in_flight_holders"])
        assert f"{row['in_flight']} ({row['in_flight_dead']} dead)" in queues(environment, tmp_path)

    # When another worker starts, with the same defaults
    second = Worker(environment, tmp_path, "second")
    workers.append(second)

    def all_applied() -> bool:
        second.check_alive()
        return count(dataverse, inbox) >= COMMANDS and count(dataverse, dv.transaction_categories) >= COMMANDS * ROWS

    wait_until(all_applied, timeout=RECOVERY_DEADLINE, interval=0.2, what="every command applied by the second worker")
    print(f"{broker.name}: every command applied {time.monotonic() - killed_at:.1f} s after the SIGKILL", file=sys.stderr)

    # Then each exactly once, none dead-lettered, nothing left in flight
    with dataverse.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(inbox)) == COMMANDS
        assert connection.scalar(select(func.sum(inbox.c.rows))) == COMMANDS * ROWS
        assert connection.scalar(select(func.count()).select_from(dead_letters)) == 0
    assert count(dataverse, dv.transaction_categories) == COMMANDS * ROWS
    if redis:
        wait_until(lambda: commands_row(environment, tmp_path)["in_flight"] == 0, timeout=TIMEOUT, what="nothing in flight")
        assert commands_row(environment, tmp_path)["ready"] == 0

    # And the supervisor names the child that died and the one it starts instead, each line with its own pid
    # (one of them may have applied everything before the other had started)
    wait_until(lambda: len(second.lines("worker started")) == PROCESSES, timeout=TIMEOUT, what="both processes started")
    before = second.worker_processes()
    assert len(before) == PROCESSES
    assert_life_cycle_lines_name_their_processes(second, before)
    killed = min(before)
    os.kill(killed, signal.SIGKILL)

    def replaced() -> set[int] | None:
        second.check_alive()
        running = second.worker_processes()
        started = {line["pid"] for line in second.lines("worker started")}
        return running if len(running) == PROCESSES and killed not in running and running <= started else None

    children = wait_until(replaced, timeout=TIMEOUT, interval=0.1, what="the supervisor's new process started")
    [died] = second.lines("worker process died; starting another")
    assert (died["pid"], died["child_pid"], died["reason"]) == (second.popen.pid, killed, "SIGKILL")
    [replacement] = children - before
    assert replacement in {line["child_pid"] for line in second.lines("worker process started")}

    # And a graceful stop's lines name each process
    assert second.stop() == 0, second.tail()
    assert {line["pid"] for line in second.lines("stopping")} == children
    assert {line["pid"] for line in second.lines("worker stopped")} == children
