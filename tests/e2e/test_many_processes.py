"""Many processes per side, graceful shutdown and SIGKILL, on Redis and on RabbitMQ against PostgreSQL.

Each worker runs as ``python -m workers worker SIDE --processes 2`` (a supervisor and two worker
processes), so six worker processes share one broker and three databases. One test per broker
drives the whole expense flow (set-up, categories, projects, reports in two legal entities
created, submitted, approved and posted) through three phases, each ending with reconcile ok and
exact counts (reconcile fails on any doubled expense record, actual, journal line or project
transaction; the totals must equal the posted lines, so nothing is lost either):

1. the flow with two processes per side;
2. the Dataverse worker stopped with SIGTERM while its queue holds a backlog and batches are in
   flight: the in-flight batches finish, it exits 0 with its outbox drained; a new one finishes
   the rest;
3. the Dataverse worker SIGKILLed (supervisor and children) mid-batch: a new one gets the dead
   worker's messages back (RabbitMQ: when the connection drops; Redis: once its heartbeat is older
   than the default ``DUALWRITE_HEARTBEAT_TIMEOUT_MS``, 10 s, at the next maintenance pass, which
   every worker process runs every 2 s) and applies each exactly once;
4. one of finance's two processes SIGKILLed while reports are being posted: the supervisor logs
   it and starts another, and the posts it held come back the same way.

"In flight" is made certain, not hoped for: the test holds an EXCLUSIVE lock on Dataverse's expense
table, so every batch a worker takes waits in its transaction; the signal is sent once PostgreSQL
shows batches waiting on that lock and (SIGTERM) every process has logged ``worker started``, and
the lock is let go only when every process has taken the signal. Started under the lock, the
processes also show that a worker's start-up does not wait for a business table.

Why SIGTERM waits for ``worker started``: a process still starting (its interpreter importing,
before ``serve`` holds the stop signals pending) dies at once on SIGTERM, as it should (nothing
consumed), but then logs nothing; the test waited for a ``stopping`` line it would never write.

The flow is driven with the bench's pieces (workers/bench/prepare.py). No fixed sleeps: every wait
polls a database or the broker with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from contracts.catalog import default_registry
from contracts.envelope import Side
from shared.broker import make_broker
from shared.settings import Settings
from shared.signatures import key_ring
from shared.side_database import SideDatabase
from shared.waiting import Timeout, wait_until
from tests.e2e.brokers import Broker
from workers.bench import load
from workers.bench.brokers import Rabbitmqctl, unsettled_messages
from workers.bench.measure import descendants
from workers.bench.phases import reconciled
from workers.bench.prepare import Pipeline, load_setup, post, prepare_reports
from workers.dataverse import tables as dv
from workers.operations.broker_queues import broker_queues_for
from workers.reconcile import reconcile
from workers.runtime import SPECS

try:  # schema migrations (`dualwrite db upgrade`): workers refuse a database not at their head
    from shared import migrations
except ImportError:  # a tree from before migrations: workers create their tables themselves
    migrations = None  # type: ignore[assignment]

SIDES = ("finance", "dataverse", "bridge")
#: In the default run; `-m scale` selects this file's tests alone.
pytestmark = pytest.mark.scale

PROCESSES = 2
LINES = 3
TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: A graceful stop finishes the batches in flight first (six worker processes, PostgreSQL and
#: RabbitMQ share a 2-core machine under test).
GRACEFUL_STOP_TIMEOUT = 60.0
#: The longest a phase may take to reconcile while messages keep being applied.
FLOW_LIMIT = 300.0
EXPENSES_TO_DATAVERSE = "msdyn_expenses.bridge-to-dataverse"


class Worker:
    """``python -m workers worker SIDE --processes 2`` in a session of its own, logging to a file."""

    def __init__(self, side: str, environment: dict[str, str], log_dir: Path, generation: int) -> None:
        self.generation = generation
        self.side = side
        self.log_path = log_dir / f"{side}-{generation}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "workers", "worker", side, "--processes", str(PROCESSES), "--threads", "4"],
                env=environment,
                cwd=log_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def children(self) -> list[int]:
        return descendants(self.popen.pid)

    def worker_processes(self) -> set[int]:
        """The supervisor's worker processes (not multiprocessing's resource tracker)."""
        found = set()
        for pid in self.children():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.add(pid)
        return found

    def terminate(self) -> int | None:
        """SIGTERM to the supervisor (it passes it on); the exit status, None when it had to be killed."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=GRACEFUL_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.dump_stacks()
            self.kill()
            return None

    def dump_stacks(self) -> None:
        """Every worker process prints its threads' stacks into the log (workers.process.serve)."""
        for pid in self.worker_processes():
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
        try:
            wait_until(lambda: "Thread 0x" in self.log_tail(2000), timeout=5, what="stack dump in the log")
        except Timeout:
            pass

    def kill(self) -> None:
        """SIGKILL to the supervisor and every process it started, as a container runtime kills them."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=STOP_TIMEOUT)


class DeploymentBroker:
    """What Pipeline (workers/bench) asks of the run's broker: the operators' queue counts and, on
    RabbitMQ (whose AMQP counts leave out what workers fetched), the server's own count."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts_in_flight = not url.startswith(("amqp://", "amqps://"))

    def queues(self, broker: Any) -> Any:
        return broker_queues_for(broker, self.url)

    def unsettled(self) -> int | None:
        if self.counts_in_flight:
            return None
        vhost = unquote(urlsplit(self.url).path.lstrip("/")) or "/"
        return unsettled_messages(Rabbitmqctl().queue_counts(vhost))


class Deployment:
    """Three worker commands as local processes, and what Pipeline (workers/bench) asks of its services."""

    def __init__(self, environment: dict[str, str], databases: dict[str, SideDatabase], log_dir: Path) -> None:
        self.environment = environment
        self.databases = databases
        self.log_dir = log_dir
        self.broker = DeploymentBroker(environment["DUALWRITE_BROKER_URL"])
        self.workers: dict[str, Worker] = {}
        #: Taken out of the running set to be stopped on purpose; stopped (or killed) at the end if still running.
        self.retired: list[Worker] = []
        self.generations = 0

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [worker.popen for worker in self.workers.values()]

    def start(self, side: str, **environment: str) -> Worker:
        self.generations += 1
        self.workers[side] = Worker(side, {**self.environment, **environment}, self.log_dir, self.generations)
        return self.workers[side]

    def dump_stacks(self) -> None:
        """Every running worker process prints its threads' stacks into its log: why a wait ran out."""
        for worker in [*self.workers.values(), *self.retired]:
            if worker.popen.poll() is None:
                worker.dump_stacks()

    def check_alive(self) -> None:
        for worker in self.workers.values():
            code = worker.popen.poll()
            assert code is None, f"the {worker.side} worker exited with {code}:\n{worker.log_tail()}"

    def retire(self, side: str) -> Worker:
        """Take a worker out of the running set, before it is stopped on purpose."""
        worker = self.workers.pop(side)
        self.retired.append(worker)
        return worker

    def close(self) -> None:
        for worker in [*self.workers.values(), *self.retired]:
            if worker.popen.poll() is None and worker.terminate() is None:
                pass  # killed: its log says why
        self.workers.clear()
        self.retired.clear()
        for database in self.databases.values():
            database.dispose()


@pytest.fixture
def deployment(broker: Broker, postgres_server: Any, tmp_path: Path) -> Iterator[Deployment]:
    """Three empty PostgreSQL databases with their tables, and the workers' environment on ``broker``."""
    postgres_server.reset()
    databases = {}
    for side in SIDES:
        spec = SPECS[Side(side)]
        databases[side] = SideDatabase.open(side, postgres_server.urls[side], spec.metadata, spec.messaging, pool_size=2)
        # Before any worker starts, as `dualwrite db upgrade` does in a deployment.
        if migrations is None:
            databases[side].create_tables()
        else:
            migrations.upgrade(databases[side])
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(
        {
            "DUALWRITE_BROKER_URL": broker.url,
            # One development key ring for the workers and the test's publisher.
            "DUALWRITE_KEYS_DIR": str(tmp_path / "keys"),
            "DUALWRITE_FINANCE_DB_URL": postgres_server.urls["finance"],
            "DUALWRITE_DATAVERSE_DB_URL": postgres_server.urls["dataverse"],
            "DUALWRITE_BRIDGE_DB_URL": postgres_server.urls["bridge"],
            "DUALWRITE_IMPORT_INTERVAL_SECONDS": "0.3",
            "DUALWRITE_OUTBOX_SWEEP_SECONDS": "0.2",
            "DUALWRITE_MIN_BACKOFF_MS": "50",
            "DUALWRITE_MAX_BACKOFF_MS": "1000",
            "DUALWRITE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    running = Deployment(environment, databases, tmp_path)
    try:
        yield running
    finally:
        running.close()


def expense_records(deployment: Deployment) -> int:
    with deployment.databases["dataverse"].engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(dv.expenses)) or 0


def outbox_backlog(deployment: Deployment, side: str) -> int:
    database = deployment.databases[side]
    outbox = database.messaging.outbox
    with database.engine.connect() as connection:
        return connection.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) or 0


def wait_for(what: str, condition: Callable[[], Any], check: Callable[[], None], interval: float = 0.05) -> Any:
    def polled() -> Any:
        check()
        return condition()

    return wait_until(polled, timeout=TIMEOUT, interval=interval, what=what)


@contextmanager
def held_table(deployment: Deployment, side: str, table: Table) -> Iterator[None]:
    """An EXCLUSIVE lock on ``table`` (reads pass, writes wait) until the block ends: every batch that
    writes it waits, in flight, in its worker's transaction."""
    with deployment.databases[side].engine.connect() as connection:
        with connection.begin():
            connection.execute(text(f"LOCK TABLE {table.name} IN EXCLUSIVE MODE"))
            yield


def waiting_on(deployment: Deployment, side: str, table: Table) -> int:
    """Transactions waiting for a lock on ``table``: batches in flight, held by ``held_table``."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) AND relation = to_regclass(:name)"
    )
    connection: Connection
    with deployment.databases[side].engine.connect() as connection:
        return connection.scalar(query, {"name": table.name}) or 0


def logged(worker: Worker, event: str) -> int:
    """How many of the worker's processes logged ``event`` (the worker logs at INFO)."""
    return worker.log_path.read_text(errors="replace").count(f'"event": "{event}"')


def stop_signals_blocked_in_every_thread(worker: Worker) -> bool:
    """Every thread but the main one, which takes them in sigwait, blocks SIGTERM and SIGINT (workers/stop_signals.py)."""
    wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
    for pid in worker.worker_processes():
        for task in Path(f"/proc/{pid}/task").iterdir():
            if task.name == str(pid):  # in sigwait the kernel shows the waited-for signals unblocked
                continue
            status = (task / "status").read_text()
            blocked = int(status.split("SigBlk:")[1].split()[0], 16)
            if blocked & wanted != wanted:
                return False
    return True


def messages_applied(deployment: Deployment) -> int:
    """Messages applied so far, every side together (one inbox row each): the flow's progress."""
    total = 0
    for database in deployment.databases.values():
        with database.engine.connect() as connection:
            total += connection.scalar(select(func.count()).select_from(database.messaging.inbox)) or 0
    return total


def wait_while_progressing(deployment: Deployment, what: str, condition: Callable[[], Any], check: Callable[[], None]) -> None:
    """Wait for ``condition`` as long as the flow moves: fail when no message was applied for TIMEOUT
    seconds (stuck), not because a loaded machine is slow; never wait longer than FLOW_LIMIT."""
    limit = time.monotonic() + FLOW_LIMIT
    while True:
        seen = messages_applied(deployment)

        def done_or_moved() -> str | None:
            if condition():
                return "done"
            return "moved" if messages_applied(deployment) != seen else None

        try:
            outcome = wait_for(what, done_or_moved, check, interval=0.2)
        except Timeout:
            raise Timeout(f"{what}: no message applied for {TIMEOUT:g} s ({seen} so far)") from None
        if outcome == "done":
            return
        if time.monotonic() >= limit:
            raise Timeout(f"{what} not met within {FLOW_LIMIT:g} s, though messages kept being applied")


def assert_reconciled(pipeline: Pipeline, deployment: Deployment, expected_lines: int) -> None:
    """Reconcile ok in both legal entities, every count equal to the posted lines: nothing lost, nothing doubled."""
    started = time.monotonic()
    wait_while_progressing(deployment, f"reconcile ok with {expected_lines} lines", lambda: reconciled(pipeline, expected_lines), pipeline.check)
    companies = reconcile(deployment.databases["finance"], deployment.databases["dataverse"])
    assert len(companies) == 2
    totals: dict[str, int] = {}
    for company in companies:
        assert company.ok, company.as_json()
        for name, count in company.counts.items():
            totals[name] = totals.get(name, 0) + count
    assert totals == dict.fromkeys(totals, expected_lines), totals
    pipeline.check(dead_letters_every=0)  # no message was dead-lettered
    print(f"reconcile ok with {expected_lines} lines after {time.monotonic() - started:.1f} s", file=sys.stderr)


def stop_gracefully(worker: Worker) -> None:
    status = worker.terminate()
    assert status == 0, f"SIGTERM: the {worker.side} worker exited {status}\n{worker.log_tail(400)}"


def post_all(pipeline: Pipeline, reports: list[load.BenchReport]) -> None:
    """One post command per report, so many msdyn_expenses batches travel at once."""
    for report in reports:
        post(pipeline, report.legal_entity, [report])


def backlog_for_dataverse(pipeline: Pipeline, deployment: Deployment, queues: Any, reports: list[load.BenchReport]) -> None:
    """With the Dataverse worker stopped, post the reports and wait until their expense rows all wait for it:
    the bridge sent every report's part (several may share a message), and none has been taken."""
    post_all(pipeline, reports)
    outbox = deployment.databases["bridge"].messaging.outbox

    def sent_to_dataverse() -> int:
        with deployment.databases["bridge"].engine.connect() as connection:
            return connection.scalar(
                select(func.count()).where(outbox.c.queue_name == EXPENSES_TO_DATAVERSE, outbox.c.sent_at.is_not(None))
            ) or 0

    wait_for(
        f"{len(reports)} reports' msdyn_expenses parts waiting for Dataverse",
        lambda: sent_to_dataverse() >= len(reports) and queues.counts([EXPENSES_TO_DATAVERSE])[EXPENSES_TO_DATAVERSE].ready > 0,
        pipeline.check,
    )


@pytest.mark.postgres
def test_two_processes_per_side_survive_sigterm_and_sigkill(deployment: Deployment, broker: Broker) -> None:
    settings = Settings(broker_url=broker.url, keys_dir=Path(deployment.environment["DUALWRITE_KEYS_DIR"]))
    dramatiq_broker = make_broker(settings)
    queues = broker_queues_for(dramatiq_broker, broker.url)
    pipeline = Pipeline(
        deployment, dramatiq_broker, default_registry(), key_ring(settings), timeout=TIMEOUT, progress=lambda _: None  # type: ignore[arg-type]
    )
    try:
        for side in SIDES:
            deployment.start(side)
        companies = load.companies(2)
        projects = {company.legal_entity: load.projects(company, 2) for company in companies}
        load_setup(pipeline, companies, projects)
        for worker in deployment.workers.values():
            assert len(worker.worker_processes()) == PROCESSES, f"{worker.side}: {worker.children()}"
            assert stop_signals_blocked_in_every_thread(worker), f"{worker.side}: a thread can take SIGTERM or SIGINT"

        # 1. the whole flow, two processes per side
        first = load.generate_reports(companies, projects, 8, LINES, prefix="A")
        prepare_reports(pipeline, first, LINES)
        post_all(pipeline, first)
        expected = len(first) * LINES
        assert_reconciled(pipeline, deployment, expected)

        # 2. SIGTERM while Dataverse holds batches: they finish, the outbox drains, exit 0
        second = load.generate_reports(companies, projects, 48, LINES, prefix="B")
        prepare_reports(pipeline, second, LINES)
        stop_gracefully(deployment.retire("dataverse"))
        backlog_for_dataverse(pipeline, deployment, queues, second)
        before = expense_records(deployment)
        with held_table(deployment, "dataverse", dv.expenses):
            dataverse = deployment.start("dataverse", DUALWRITE_LOG_LEVEL="INFO")  # INFO: "worker started", "stopping"
            # Every process started (a process still importing dies on SIGTERM without a word), and batches waiting.
            wait_for("every Dataverse process started", lambda: logged(dataverse, "worker started") == PROCESSES, pipeline.check)
            in_flight = wait_for("Dataverse batches in flight", lambda: waiting_on(deployment, "dataverse", dv.expenses), pipeline.check)
            deployment.retire("dataverse").popen.send_signal(signal.SIGTERM)
            wait_for("every Dataverse process stopping", lambda: logged(dataverse, "stopping") == PROCESSES, lambda: None)
            assert expense_records(deployment) == before
        stop_gracefully(dataverse)
        assert outbox_backlog(deployment, "dataverse") == 0, "a stopped Dataverse worker left its outbox undrained"
        stopped_at = expense_records(deployment)
        expected += len(second) * LINES
        assert stopped_at >= before + in_flight * LINES, "a batch in flight at SIGTERM was not finished"
        assert stopped_at < expected, "a stopping worker took new batches"
        deployment.start("dataverse")
        assert_reconciled(pipeline, deployment, expected)

        # 3. SIGKILL mid-batch: a new worker gets the dead one's messages back, applies each once
        third = load.generate_reports(companies, projects, 24, LINES, prefix="C")
        prepare_reports(pipeline, third, LINES)
        stop_gracefully(deployment.retire("dataverse"))
        backlog_for_dataverse(pipeline, deployment, queues, third)
        before = expense_records(deployment)
        with held_table(deployment, "dataverse", dv.expenses):
            deployment.start("dataverse")
            wait_for("Dataverse batches in flight", lambda: waiting_on(deployment, "dataverse", dv.expenses), pipeline.check)
            deployment.retire("dataverse").kill()
            if broker.name == "redis":  # the dead worker's fetched messages wait in its acks set for the heartbeat timeout
                held = queues.counts([EXPENSES_TO_DATAVERSE])[EXPENSES_TO_DATAVERSE].in_flight
                assert held, "the killed worker held no message: nothing for the heartbeat timeout to bring back"
        assert expense_records(deployment) == before, "a killed worker's batch was committed"
        expected += len(third) * LINES
        deployment.start("dataverse")
        assert_reconciled(pipeline, deployment, expected)

        # 4. one finance process SIGKILLed while posting: its supervisor says so and starts another
        fourth = load.generate_reports(companies, projects, 12, LINES, prefix="D")
        prepare_reports(pipeline, fourth, LINES)
        finance = deployment.workers["finance"]
        killed = min(finance.worker_processes())
        post_all(pipeline, fourth)
        os.kill(killed, signal.SIGKILL)

        def replaced() -> bool:
            # One look at the processes: two looks could see the killed one alive, then gone (not yet replaced).
            running = finance.worker_processes()
            return len(running) == PROCESSES and killed not in running

        wait_for("finance's supervisor running a new process", replaced, pipeline.check)
        assert "worker process died; starting another" in finance.log_path.read_text(errors="replace")
        expected += len(fourth) * LINES
        assert_reconciled(pipeline, deployment, expected)
    except Timeout:
        deployment.dump_stacks()  # into the workers' logs, kept under the test's tmp_path
        raise
    finally:
        queues.close()
        dramatiq_broker.close()


def test_a_process_failing_on_its_own_stops_the_others_with_its_status(tmp_path: Path) -> None:
    """No service needed: a database nobody listens on makes each process exit 4 (UNAVAILABLE) at start
    (after one attempt: DUALWRITE_CONNECT_TIMEOUT_SECONDS=0); the supervisor stops the rest and exits
    with that status instead of restarting forever."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    unreachable = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    environment.update(
        {
            "DUALWRITE_BROKER_URL": "redis://127.0.0.1:9/0",
            "DUALWRITE_FINANCE_DB_URL": unreachable,
            "DUALWRITE_DATAVERSE_DB_URL": unreachable,
            "DUALWRITE_BRIDGE_DB_URL": unreachable,
            "DUALWRITE_CONNECT_TIMEOUT_SECONDS": "0",  # one attempt each: no wait for what never comes
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "workers", "worker", "finance", "--processes", "2"],
        env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=STOP_TIMEOUT,
    )
    assert done.returncode == 4, done.stderr
    assert "worker process failed; stopping the others" in done.stderr
    assert "starting another" not in done.stderr


def test_sigterm_while_the_processes_are_still_starting_ends_them_and_the_supervisor_says_so(tmp_path: Path) -> None:
    """No service needed: SIGTERM as soon as both processes exist, long before either has imported the
    workers (hundreds of milliseconds away). Each dies at once on the signal, having consumed nothing and
    logged nothing itself; the supervisor logs each and exits 0, as after any graceful stop."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    unreachable = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=2"
    environment.update(
        {
            "DUALWRITE_BROKER_URL": "redis://127.0.0.1:9/0",
            "DUALWRITE_FINANCE_DB_URL": unreachable,
            "DUALWRITE_DATAVERSE_DB_URL": unreachable,
            "DUALWRITE_BRIDGE_DB_URL": unreachable,
            "DUALWRITE_LOG_LEVEL": "INFO",
        }
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "workers", "worker", "finance", "--processes", str(PROCESSES)],
        env=environment, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        def worker_processes() -> bool:
            found = [pid for pid in descendants(supervisor.pid) if b"spawn_main" in _cmdline(pid)]
            return len(found) == PROCESSES

        wait_until(worker_processes, timeout=STOP_TIMEOUT, interval=0.005, what="both worker processes spawned")
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=STOP_TIMEOUT)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.communicate()
    assert supervisor.returncode == 0, stderr
    assert stderr.count('"event": "worker process stopped while starting"') == PROCESSES, stderr
    assert "worker started" not in stderr


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
