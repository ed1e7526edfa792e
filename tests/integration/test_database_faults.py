"""The database fails and nothing is lost, doubled or dead-lettered for it, and no worker gives up.

The three workers run on a PostgreSQL cluster of the test's own (``workers.faults.private_postgres``:
the machine's shared server is never restarted), on the real Redis or a throwaway RabbitMQ vhost,
with the fast retry policy of the tests (2 retries, 10-100 ms apart): a failure that counted as
a retry would dead-letter within a fraction of a second. The expense flow (tests/integration/
test_expense_flow.py) is driven to its approved reports, then posted while the database fails:

(a) every connection of the three databases is killed (``pg_terminate_backend``) again and again
    until the flow has reconciled;
(a') every message's first unit of work has its connection killed after its writes, before its
    commit: each is applied on the delivery that met the kill (no retry of the broker's used);
(b) the cluster is stopped while the post commands arrive, ``dualwrite health`` and the metrics say
    the databases are unreachable, then it starts again;
(b') the workers are stopped while the cluster is down (their waiting threads give the messages
    back, no retry counted), and workers started after it is back apply them.

Every way the books come out right to the cent (nothing doubled, nothing lost), every outbox row
is sent, and no message is dead-lettered, in the sides' ledgers or in the broker.

(c) A worker process (``python -m workers worker finance``) whose database stops keeps running,
    reports unhealthy, and is healthy again once the database is back, without a restart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
import psycopg
import pytest
from dramatiq.middleware import CurrentMessage, Middleware

from contracts.queues import all_queues
from shared.consumer import Endpoint
from shared.database_outage import is_database_unavailable
from shared.settings import Settings
from shared.waiting import wait_until
from tests.conftest import FAST, unavailable
from tests.e2e.brokers import BrokerUnavailable, throwaway_vhost
from tests.integration.report_flow import dualwrite
from tests.integration.support import FINANCE, System
from tests.integration.test_expense_flow import (
    flow_settings,
    given_the_demo_setup,
    reconciled_and_written_back,
    running,
    then_the_books_are_right_to_the_cent,
    today,
    wait_until_reconciled,
    when_the_reports_are_created_submitted_and_approved,
    when_the_reports_are_posted,
)
from workers.cli.exit_codes import ExitCode
from workers.faults.private_postgres import PrivatePostgres
from workers.operations.broker_queues import broker_queues_for

pytestmark = pytest.mark.postgres

SIDES = ("finance", "dataverse", "bridge")
REPO = Path(__file__).resolve().parents[2]
#: The flow under faults: every hop waits out outages, on a machine other test runs load too.
WAIT = 180.0
T = TypeVar("T")


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test's own, with a database per side; removed afterwards."""
    try:
        made = PrivatePostgres()
    except FileNotFoundError as error:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl)", error)
    try:
        made.start()
    except Exception as error:
        made.remove()
        unavailable("a private PostgreSQL cluster", error)
    try:
        for side in SIDES:
            made.create_database(side)
        yield made
    finally:
        made.remove()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ]
)
def broker_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "redis":
        yield request.getfixturevalue("redis_db").url
        return
    with ExitStack() as cleanup:
        try:
            url = cleanup.enter_context(throwaway_vhost())
        except BrokerUnavailable as error:
            unavailable("RabbitMQ", error)
        yield url


def cluster_settings(cluster: PrivatePostgres, broker_url: str, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        broker_url=broker_url,
        data_dir=data_dir,
        **{f"{side}_db_url": cluster.database_url(side) for side in SIDES},
        **{**FAST, **overrides},
    )


@pytest.fixture
def flow(cluster: PrivatePostgres, broker_url: str, tmp_path: Path) -> Iterator[System]:
    """The three workers on the private cluster and the broker, the demo set-up loaded, three reports approved."""
    settings = flow_settings(cluster_settings(cluster, broker_url, tmp_path / "data"))
    with running(settings, "redis" if broker_url.startswith("redis") else "rabbitmq") as system:
        given_the_demo_setup(system)
        when_the_reports_are_created_submitted_and_approved(system)
        yield system


def while_the_database_may_fail(check: Callable[[], T | None]) -> Callable[[], T | None]:
    """``check``, answering "not yet" when the test's own look at a database meets it unreachable."""

    def tolerant() -> T | None:
        try:
            return check()
        except Exception as error:
            if is_database_unavailable(error):
                return None
            raise

    return tolerant


class ConnectionKiller:
    """Kills every connection to the sides' databases, round after round, until stopped."""

    def __init__(self, cluster: PrivatePostgres) -> None:
        self.cluster = cluster
        self.killed = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-killer", daemon=True)

    def __enter__(self) -> "ConnectionKiller":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.killed += sum(self.cluster.terminate_connections(side) for side in SIDES)
            self.rounds += 1


def broker_dead_letters(system: System) -> dict[str, int]:
    """How many messages each queue's dead-letter queue holds in the broker (the ledgers aside)."""
    queues = broker_queues_for(system.runtime.broker, system.runtime.settings.broker_url)
    try:
        held = {queue.name: len(queues.dead_letters(queue.name)) for queue in all_queues()}
    finally:
        queues.close()
    return {name: count for name, count in held.items() if count}


def then_nothing_was_lost_doubled_or_dead_lettered(system: System, posting_days: set[Any]) -> None:
    report = wait_until_reconciled(system, timeout=WAIT)  # with no dead letter in any side's ledger
    then_the_books_are_right_to_the_cent(system, report, posting_days)
    assert broker_dead_letters(system) == {}
    for side in system.runtime.sides:
        assert [row.message_id for row in system.outbox(side) if row.sent_at is None] == []
        assert system.database(side).availability.up


# -- (a) connections killed again and again ------------------------------------------------------


def test_every_connection_killed_again_and_again_while_reports_are_posted(flow: System, cluster: PrivatePostgres) -> None:
    first_day = today()
    with ConnectionKiller(cluster) as killer:
        # When the reports are posted while every connection of the three databases is killed, round after round
        when_the_reports_are_posted(flow)
        wait_until(
            while_the_database_may_fail(lambda: reconciled_and_written_back(flow)),
            timeout=WAIT,
            interval=0.1,
            what="reconcile ok while connections are killed",
        )
    assert killer.killed > 0, "the killer never found a connection to kill"
    # The test's own looks from here on start on new connections: one killed in the last round may
    # rest in the pool for less than the ping's idle second, and the test, unlike a message, is not retried.
    for side in flow.runtime.sides:
        flow.database(side).engine.dispose()

    # Then every report was posted once, to the cent, with nothing dead-lettered and nothing left unsent
    then_nothing_was_lost_doubled_or_dead_lettered(flow, {first_day, today()})


class KillsItsConnectionOnce:
    """Wraps every handler of the running sides: the first time a message is handled, its unit of
    work's connection is killed (``pg_terminate_backend``) once the handler has written, before the
    commit. Notes how many times the broker had retried each message when it was handled."""

    def __init__(self, system: System, cluster: PrivatePostgres) -> None:
        self.cluster = cluster
        self.killed: set[str] = set()
        self.retries_seen: list[int] = []
        self._lock = threading.Lock()
        for side in system.runtime.sides.values():
            for consumer in side.consumers:
                handlers = {name: self._wrap(handler) for name, handler in consumer.endpoint.handlers.items()}
                consumer.endpoint = Endpoint(consumer.endpoint.queue, handlers)

    def _wrap(self, handler: Callable[..., None]) -> Callable[..., None]:
        def killed_once(message: Any, uow: Any) -> None:
            current = CurrentMessage.get_current_message()
            handler(message, uow)
            key = str(message.envelope.message_id)
            with self._lock:
                self.retries_seen.append(current.options.get("retries", 0) if current else 0)
                first = key not in self.killed
                self.killed.add(key)
            if first:
                pid = uow.connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                with psycopg.connect(self.cluster.url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        return killed_once


def test_a_connection_killed_in_the_middle_of_every_transaction_applies_each_message_once(
    flow: System, cluster: PrivatePostgres
) -> None:
    # Given every message's first unit of work loses its connection after its writes, before its commit
    kills = KillsItsConnectionOnce(flow, cluster)
    first_day = today()

    # When the reports are posted
    when_the_reports_are_posted(flow)
    wait_until(
        while_the_database_may_fail(lambda: reconciled_and_written_back(flow)),
        timeout=WAIT, interval=0.1, what="reconcile ok",
    )
    for side in flow.runtime.sides:
        flow.database(side).engine.dispose()

    # Then each was applied once, on the same delivery (no retry of the broker's used up), and the books are right
    assert len(kills.killed) >= 9, kills.killed  # every hop of the flow, from the post commands on
    assert set(kills.retries_seen) == {0}
    then_nothing_was_lost_doubled_or_dead_lettered(flow, {first_day, today()})


# -- (b) the cluster restarted while messages arrive ---------------------------------------------


def test_a_restarted_database_loses_nothing_and_health_says_it_is_down_meanwhile(
    flow: System, cluster: PrivatePostgres
) -> None:
    settings = flow.runtime.settings
    availability = {side.value: flow.database(side).availability for side in flow.runtime.sides}
    first_day = today()

    # Given the cluster stops
    cluster.stop()
    # When the reports are posted meanwhile and finance's consumers take the commands
    when_the_reports_are_posted(flow)
    wait_until(lambda: not availability["finance"].up, timeout=WAIT, what="finance's consumers meet the outage")

    # Then the health check and the metrics say the databases are unreachable, while the workers run on
    health = dualwrite(settings, "health", "--json")
    assert health.returncode == ExitCode.UNHEALTHY, health.stdout + health.stderr
    checks = {check["name"]: check for check in json.loads(health.stdout)["checks"]}
    for side in SIDES:
        assert checks[f"database:{side}"]["ok"] is False
        assert "unavailable" in checks[f"database:{side}"]["detail"]
    readable = {side: flow.runtime.metrics.registry.get_sample_value("dualwrite_database_readable", {"side": side}) for side in SIDES}
    assert readable == dict.fromkeys(SIDES, 0.0)
    assert flow.runtime.worker is not None and all(thread.is_alive() for thread in flow.runtime.worker.workers)
    assert [task.name for task in flow.runtime.background if not task.alive] == []
    # And nothing was dead-lettered for the outage
    assert broker_dead_letters(flow) == {}

    # When the cluster starts again
    cluster.start()

    # Then the waiting messages and what the outboxes accumulated go on, and the books are right
    then_nothing_was_lost_doubled_or_dead_lettered(flow, {first_day, today()})
    assert availability["finance"].outages >= 1
    # (the tables were made without migrations: the check finds them at no revision, and reachable)
    answered = {check["name"]: check["detail"] for check in json.loads(dualwrite(settings, "health", "--json").stdout)["checks"]}
    assert [side for side in SIDES if "unavailable" in answered[f"database:{side}"]] == [], answered


def test_a_worker_stopped_while_its_database_is_down_gives_its_messages_back_and_the_next_applies_them(
    cluster: PrivatePostgres, broker_url: str, tmp_path: Path
) -> None:
    settings = flow_settings(cluster_settings(cluster, broker_url, tmp_path / "data"))
    name = "redis" if broker_url.startswith("redis") else "rabbitmq"
    with running(settings, name) as system:
        given_the_demo_setup(system)
        when_the_reports_are_created_submitted_and_approved(system)
        first_day = today()
        # Given the database stops while the post commands are being applied
        cluster.stop()
        when_the_reports_are_posted(system)
        finance = system.database(FINANCE).availability
        wait_until(lambda: not finance.up, timeout=WAIT, what="finance's consumers meet the outage")
        # When the workers stop meanwhile: the threads waiting for the database let go of their messages
        stopping = threading.Thread(target=system.runtime.stop, name="stopping")
        stopping.start()
        stopping.join(timeout=WAIT)
        assert not stopping.is_alive(), "the workers did not stop while their database was down"

    # Then workers started once the database is back apply them, once, with none of their retries
    # used up, and nothing is dead-lettered
    cluster.start()
    seen = RetriesSeen()
    with running(settings, name, middleware=[seen]) as system:
        then_nothing_was_lost_doubled_or_dead_lettered(system, {first_day, today()})
    assert seen.by_queue.get("finance.commands") == {0}, seen.by_queue


class RetriesSeen(Middleware):
    """The ``retries`` count of every message a worker processes, by queue."""

    def __init__(self) -> None:
        self.by_queue: dict[str, set[int]] = {}

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self.by_queue.setdefault(message.queue_name, set()).add(message.options.get("retries", 0))


# -- (c) a worker process whose database stays down ----------------------------------------------


@pytest.mark.redis
def test_a_worker_process_whose_database_goes_down_reports_unhealthy_and_recovers_without_a_restart(
    cluster: PrivatePostgres, redis_db: Any, tmp_path: Path
) -> None:
    settings = cluster_settings(cluster, redis_db.url, tmp_path / "data", heartbeat_timeout_ms=60_000)
    # The finance database at the head of its migrations, as `dualwrite db upgrade` leaves it
    upgraded = dualwrite(settings, "db", "upgrade", "--side", "finance")
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(
        DUALWRITE_BROKER_URL=settings.broker_url,
        DUALWRITE_DATA_DIR=str(settings.data_dir),
        DUALWRITE_FINANCE_DB_URL=cluster.database_url("finance"),
        DUALWRITE_LOG_FORMAT="json",
        DUALWRITE_IMPORT_INTERVAL_SECONDS="0.2",
        DUALWRITE_OUTBOX_SWEEP_SECONDS="0.2",
    )
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker", "finance"], cwd=REPO, env=environment,
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "worker started" in log_path.read_text(), timeout=WAIT, interval=0.2, what="the worker started")
        # Given the worker's database stops
        cluster.stop()
        wait_until(
            lambda: "periodic task waits for its database" in log_path.read_text(),
            timeout=WAIT, interval=0.2, what="the worker meets the outage",
        )
        # Then the worker runs on and says it is unhealthy
        health = dualwrite(settings, "health", "--side", "finance", "--json")
        assert health.returncode == ExitCode.UNHEALTHY
        assert {check["name"]: check["ok"] for check in json.loads(health.stdout)["checks"]}["database:finance"] is False
        assert worker.poll() is None, log_path.read_text()[-3000:]

        # When the database is back
        cluster.start()
        wait_until(
            lambda: "periodic task runs again" in log_path.read_text(), timeout=WAIT, interval=0.2,
            what="the worker's tasks run again",
        )
        # Then the same process is healthy again
        assert worker.poll() is None, log_path.read_text()[-3000:]
        healthy = dualwrite(settings, "health", "--side", "finance", "--json")
        assert healthy.returncode == ExitCode.OK, healthy.stdout
        # The outage was logged once per task, not once per attempt
        text = log_path.read_text()
        tasks = ("finance-import-from-staging", "finance-outbox-relay")
        assert [text.count(f'"task": "{task}"') for task in tasks] == [2, 2], text[-3000:]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
