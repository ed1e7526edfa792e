"""The broker loses messages; reconcile finds the parts that never arrived and the repair sends them again.

On the real PostgreSQL, and Redis or RabbitMQ: two expense reports are approved with every worker running,
then posted while the receiving side of one hop is stopped, so their messages queue up on that
hop's queue; one of them is taken off the broker for good (workers/faults/lose_messages.py), as a Redis
restarted without persistence or a RabbitMQ failover would lose it. The receiver is started again. Without a repair the
pipeline goes idle with that report half-way: reconcile reports the business counts apart and the
lost part by queue. Then the repair (``dualwrite reconcile --repair``, or the periodic
``--repair --every`` process) hands the part back to its sender's outbox, and the report reaches
the end exactly once: reconcile ok with every count equal to the lines posted, the repair audited
and counted, and a second repair finds nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from contracts.envelope import Side
from contracts.queues import Queue, all_queues, table_map
from shared.settings import Settings
from shared.side_database import SideDatabase
from shared.waiting import wait_until
from tests.conftest import Backend, PostgresServer, RedisServer, services_settings
from tests.e2e.brokers import BrokerUnavailable, throwaway_vhost
from tests.e2e.conftest import broker_unavailable
from tests.in_process_cli import operator_environment
from tests.integration.conftest import started_system
from tests.integration.report_flow import approve_report, dualwrite, given_the_demo_reference_data, step
from tests.integration.support import System
from workers.faults import free_port
from workers.faults.lose_messages import lose_queued
from workers.finance.expense_report_handlers import report_correlation
from workers.operations.audit import AuditLog
from workers.operations.broker_queues import BrokerQueues, broker_queues_for
from workers.operations.lost_messages import AUDIT_ACTION, broker_parts, check_deliveries
from workers.reconcile import CompanyReconciliation, reconcile
from workers.runtime import ALL_SIDES, Runtime

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
#: USPM's two reports: R-US-001 with two project lines, R-US-002 with one.
REPORTS = ("R-US-001", "R-US-002")
PROJECT_LINES = 3
EXPENSES = table_map("msdyn_expenses")
WAIT = 90.0


@pytest.fixture
def on_redis(redis_db: RedisServer, postgres_server: PostgresServer, tmp_path: Path) -> Backend:
    """The real Redis and PostgreSQL only: losing a message means taking it off a real broker."""
    return Backend("services", services_settings(redis_db.url, postgres_server, tmp_path / "data"), postgres_server)


@pytest.fixture
def on_rabbitmq(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[Backend]:
    """RabbitMQ (a throwaway vhost) and the real PostgreSQL."""
    with ExitStack() as cleanup:
        try:
            url = cleanup.enter_context(throwaway_vhost())
        except BrokerUnavailable as error:
            broker_unavailable(error)
        yield Backend("services", services_settings(url, postgres_server, tmp_path / "data"), postgres_server)


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def on_broker(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue(f"on_{request.param}")


# -- the scenario ---------------------------------------------------------------------------------


@contextmanager
def running(settings: Settings, sides: tuple[Side, ...]) -> Iterator[Runtime]:
    runtime = Runtime(settings, sides)
    try:
        runtime.start()
        yield runtime
    finally:
        runtime.stop()


def approved_reports(backend: Backend) -> None:
    """Reference data and both reports approved, every worker running; then every worker stopped."""
    with started_system(backend) as system:
        given_the_demo_reference_data(system)
        for report_id in REPORTS:
            approve_report(system, report_id)


@contextmanager
def one_message_lost(backend: Backend, stopped: Side, queue: Queue) -> Iterator[tuple[list[Runtime], list[str]]]:
    """Both reports posted while ``stopped`` is down, R-US-001's message on ``queue`` lost, then
    ``stopped`` started again and the pipeline left to go idle: the runtimes, and the lost part ids."""
    settings = backend.settings
    approved_reports(backend)
    with ExitStack() as stack:
        others = stack.enter_context(running(settings, tuple(side for side in ALL_SIDES if side is not stopped)))
        posting = System(others, backend.name)
        queues = stack.enter_context(closing(broker_queues_for(others.broker, settings.broker_url)))
        for waiting, report_id in enumerate(REPORTS, start=1):
            legal_entity = "USPM"
            posting.publish(
                "post_expense_reports", [{"report_id": report_id}],
                correlation_id=report_correlation(legal_entity, report_id), legal_entity=legal_entity,
            )
            # One message each: the second is posted once the first waits on the stopped side's queue.
            wait_until(lambda: queues.counts([queue.name])[queue.name].ready == waiting, timeout=WAIT, what=f"{waiting} on {queue.name}")

        [lost] = lose_queued(settings.broker_url, queue.name, 1)
        assert lost.message_id and lost.part_ids
        assert queues.counts([queue.name])[queue.name].ready == 1

        receiver = stack.enter_context(running(settings, (stopped,)))
        runtimes = [others, receiver]
        settle(runtimes, queues)
        yield runtimes, list(lost.part_ids)


@contextmanager
def closing(queues: BrokerQueues) -> Iterator[BrokerQueues]:
    try:
        yield queues
    finally:
        queues.close()


def settle(runtimes: list[Runtime], queues: BrokerQueues) -> None:
    """Every queue empty, every outbox sent, and finance's staged actuals imported and posted."""

    def idle() -> bool:
        return all(runtime.idle(queues) for runtime in runtimes for _ in range(2)) and not any(
            sum(company.pending.values()) for company in companies(runtimes)
        )

    wait_until(idle, timeout=WAIT, interval=0.1, what="pipeline idle")


def databases(runtimes: list[Runtime]) -> dict[str, SideDatabase]:
    return {side.value: side_runtime.database for runtime in runtimes for side, side_runtime in runtime.sides.items()}


def companies(runtimes: list[Runtime]) -> list[CompanyReconciliation]:
    found = databases(runtimes)
    return reconcile(found["finance"], found["dataverse"])


def reconciled(runtimes: list[Runtime]) -> CompanyReconciliation | None:
    """USPM, once it reconciles with every count equal to the project lines posted."""
    [uspm] = [company for company in companies(runtimes) if company.legal_entity == "USPM"]
    return uspm if uspm.ok and set(uspm.counts.values()) == {PROJECT_LINES} and not sum(uspm.pending.values()) else None


def lost_now(runtimes: list[Runtime], queues: BrokerQueues) -> dict[str, list[str]]:
    parts_on_queue, word = broker_parts(queues)
    assert word.startswith(queues.kind)
    check = check_deliveries(databases(runtimes), older_than=0, lookback=3600, parts_on_queue=parts_on_queue, broker=word)
    return {each.queue: each.lost for each in check.lossy}


def applied_once(database: SideDatabase, part_ids: list[str]) -> bool:
    inbox = database.messaging.inbox
    from sqlalchemy import func, select

    with database.engine.connect() as connection:
        rows = connection.execute(select(inbox.c.message_id, func.count()).where(inbox.c.message_id.in_(part_ids)).group_by(inbox.c.message_id)).all()
    return sorted(rows) == sorted((part, 1) for part in part_ids)


def then_half_way(runtimes: list[Runtime], queues: BrokerQueues, queue: Queue, lost: list[str], settings: Settings) -> None:
    """Idle, and R-US-001 stuck: reconcile says so, by the business counts and by the lost part."""
    [uspm] = [company for company in companies(runtimes) if company.legal_entity == "USPM"]
    assert not uspm.ok
    assert uspm.counts["posted_project_expense_lines"] == PROJECT_LINES
    assert uspm.counts["dataverse_expense_records"] == 1  # R-US-002's line only
    assert lost_now(runtimes, queues) == {queue.name: lost}

    checked = dualwrite(settings, "reconcile", "--older-than", "0", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is False and report["deliveries"]["lost"] == len(lost)
    [hop] = [each for each in report["deliveries"]["queues"] if each["lost"]]
    assert (hop["queue"], hop["receiver"], hop["lost_parts"], hop["resent"]) == (queue.name, queue.consumer.value, lost, 0)
    assert report["deliveries"]["broker"].startswith(queues.kind)


# -- the tests ------------------------------------------------------------------------------------


def test_reconcile_repair_brings_a_lost_message_to_the_end_exactly_once(on_broker: Backend) -> None:
    backend = on_broker
    queue = EXPENSES.inbound  # bridge -> Dataverse
    settings = backend.settings
    with one_message_lost(backend, Side.DATAVERSE, queue) as (runtimes, lost):
        queues = broker_queues_for(runtimes[0].broker, settings.broker_url)
        try:
            then_half_way(runtimes, queues, queue, lost, settings)

            # When an operator repairs
            repaired = dualwrite(settings, "reconcile", "--repair", "--older-than", "0", "--as", "ops", "--json")

            # Then the lost part goes back to the bridge's outbox, and R-US-001 reaches the end once
            assert repaired.returncode == 0, repaired.stderr
            result = json.loads(repaired.stdout)["deliveries"]
            assert (result["lost"], result["resent"]) == (len(lost), len(lost))
            settle(runtimes, queues)
            uspm = wait_until(lambda: reconciled(runtimes), timeout=WAIT, what="USPM reconciled")
            assert uspm.counts == dict.fromkeys(uspm.counts, PROJECT_LINES)
            assert uspm.expense_integration_balance == 0 and not uspm.unbalanced_vouchers
            assert applied_once(databases(runtimes)["dataverse"], lost)
            assert lost_now(runtimes, queues) == {}

            # And the repair is audited: who, how many, which queue
            [entry] = [e for e in AuditLog(databases(runtimes)["bridge"]).recent() if e.action == AUDIT_ACTION]
            assert (entry.operator, entry.count, entry.target) == ("ops", len(lost), queue.name)
            assert entry.details["queues"][queue.name] == {
                "sender": "bridge", "receiver": "dataverse", "lost": len(lost), "resent": len(lost), "parts": lost,
            }

            # And a second repair finds nothing and sends nothing
            again = dualwrite(settings, "reconcile", "--repair", "--older-than", "0", "--json")
            assert again.returncode == 0, again.stderr
            assert (json.loads(again.stdout)["deliveries"]["lost"], json.loads(again.stdout)["deliveries"]["resent"]) == (0, 0)
            ok = dualwrite(settings, "reconcile", "--older-than", "0")
            assert ok.returncode == 0, ok.stdout + ok.stderr
        finally:
            queues.close()


@pytest.mark.redis
def test_periodic_repair_process_brings_a_lost_message_to_the_end_and_counts_it(on_redis: Backend, tmp_path: Path) -> None:
    backend = on_redis
    queue = EXPENSES.outbound  # finance -> bridge: the loss is on the first hop this time
    settings = backend.settings
    with one_message_lost(backend, Side.BRIDGE, queue) as (runtimes, lost):
        queues = broker_queues_for(runtimes[0].broker, settings.broker_url)
        try:
            then_half_way(runtimes, queues, queue, lost, settings)

            # When the periodic check runs as its own process, as compose.yaml's repair service does
            port = free_port()
            environment = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DUALWRITE_")},
                **operator_environment(settings),
                "DUALWRITE_METRICS_PORT": str(port),
                "DUALWRITE_METRICS_ADDRESS": "127.0.0.1",
                "DUALWRITE_LOG_FORMAT": "json",
            }
            log = tmp_path / "repair.log"
            with open(log, "w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, "-m", "workers", "reconcile", "--repair", "--every", "0.5", "--older-than", "0"],
                    cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=stderr,
                )
            try:
                # Then the report reaches the end, once
                uspm = wait_until(lambda: reconciled(runtimes), timeout=WAIT, what=f"USPM reconciled (log: {log})")
                assert uspm.counts == dict.fromkeys(uspm.counts, PROJECT_LINES)
                assert applied_once(databases(runtimes)["bridge"], lost)
                settle(runtimes, queues)

                # And the repair is counted in its metrics, once, whatever its later runs found
                def resent() -> float | None:
                    try:
                        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                    except OSError:
                        return None
                    for line in text.splitlines():
                        if line.startswith("dualwrite_lost_messages_resent_total{") and f'queue="{queue.name}"' in line:
                            return float(line.rsplit(" ", 1)[1])
                    return None

                assert wait_until(resent, timeout=WAIT, what="the metric served") == len(lost)
                assert 'side="finance"' in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                # Its later runs find nothing: only the run that re-sent wrote an audit entry.
                entries = [e for e in AuditLog(databases(runtimes)["bridge"]).recent() if e.action == AUDIT_ACTION]
                assert [(e.operator, e.count, e.details["automatic"]) for e in entries] == [("periodic check", len(lost), True)]
                assert resent() == len(lost)
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    status = process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise
            assert status == 0, log.read_text()
            assert "lost messages sent again" in log.read_text()
        finally:
            queues.close()


@pytest.mark.redis
def test_when_nothing_is_lost_the_repair_finds_nothing_and_sends_nothing(on_redis: Backend) -> None:
    backend = on_redis
    settings = backend.settings
    with started_system(backend) as system:
        given_the_demo_reference_data(system)
        for report_id in REPORTS:
            approve_report(system, report_id)
            step(system, "post_expense_reports", report_id)
        runtimes = [system.runtime]
        queues = broker_queues_for(system.runtime.broker, settings.broker_url)
        try:
            settle(runtimes, queues)
            wait_until(lambda: reconciled(runtimes), timeout=WAIT, what="USPM reconciled")
            sends = sum(system.sends.values())

            checked = dualwrite(settings, "reconcile", "--older-than", "0", "--json")
            assert checked.returncode == 0, checked.stdout + checked.stderr
            deliveries = json.loads(checked.stdout)["deliveries"]
            assert deliveries["lost"] == 0
            assert sum(each["sent"] for each in deliveries["queues"]) == sum(each["applied"] for each in deliveries["queues"]) > 0

            repaired = dualwrite(settings, "reconcile", "--repair", "--older-than", "0", "--json")
            assert repaired.returncode == 0, repaired.stderr
            assert (json.loads(repaired.stdout)["deliveries"]["lost"], json.loads(repaired.stdout)["deliveries"]["resent"]) == (0, 0)
            for database in databases(runtimes).values():
                assert unsent(database) == 0
            settle(runtimes, queues)
            assert sum(system.sends.values()) == sends  # nothing sent again
            [entry] = [e for e in AuditLog(system.database(Side.BRIDGE)).recent() if e.action == AUDIT_ACTION]
            assert (entry.count, entry.target) == (0, "none lost")
        finally:
            queues.close()


def unsent(database: SideDatabase) -> int:
    from sqlalchemy import func, select

    outbox = database.messaging.outbox
    with database.engine.connect() as connection:
        return connection.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) or 0


def test_every_queue_has_one_receiver() -> None:
    """The repair finds each outbox row's receiver from the queue declarations: one consumer per queue name."""
    names = [queue.name for queue in all_queues()]
    assert len(names) == len(set(names))


def test_two_repairs_at_once_on_postgresql_take_turns(postgres_server: PostgresServer, tmp_path: Path) -> None:
    """The advisory lock on the bridge database: a run while another holds it skips, touching nothing."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, text

    from shared.side import open_database
    from workers.operations.lost_messages import ADVISORY_LOCK, Repair, repair_lost_messages
    from workers.runtime import SPECS

    postgres_server.reset()
    settings = Settings(data_dir=tmp_path, **{f"{side}_db_url": url for side, url in postgres_server.urls.items()})
    opened = {side.value: open_database(spec, settings) for side, spec in SPECS.items()}
    try:
        for database in opened.values():
            database.create_tables()
        bridge = opened["bridge"]
        outbox = bridge.messaging.outbox
        long_ago = datetime.now(UTC) - timedelta(minutes=10)
        with bridge.engine.begin() as connection:
            connection.execute(outbox.insert(), {
                "message_id": "lost-part", "queue_name": EXPENSES.inbound.name, "actor_name": "receive", "contract": "msdyn_expenses",
                "correlation_id": "c", "body": "{}", "created_at": long_ago, "sent_at": long_ago,
            })
        repair = Repair(older_than=60, lookback=3600, operator="ops")

        with bridge.engine.connect() as other_run:
            assert other_run.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK})
            skipped = repair_lost_messages(opened, repair)
            other_run.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
        assert skipped.skipped and (skipped.lost, skipped.resent) == (0, 0)
        with bridge.engine.connect() as connection:
            assert connection.scalar(select(outbox.c.sent_at).where(outbox.c.message_id == "lost-part")) is not None

        done = repair_lost_messages(opened, repair)
        assert (done.skipped, done.lost, done.resent) == (None, 1, 1)
    finally:
        for database in opened.values():
            database.dispose()
