"""What the operator-tool tests share: the system on each broker, and ``dualwrite`` run as an operator runs it.

The ``operated`` fixture runs the three workers in this process on one of:

- ``embedded``: fakeredis and SQLite files (a command from outside cannot reach this broker: the
  tests check that the commands say so, and drive repairs through the same operations in process);
- ``redis``: the real Redis and three real PostgreSQL databases;
- ``rabbitmq``: a throwaway vhost of the real RabbitMQ (tests/e2e/brokers.py) and the same databases.

A missing service skips its tests locally and fails them under CI (tests/conftest.py).
Commands are run through ``workers.cli.main`` with the ``DUALWRITE_*`` environment an operator
would set, their stdout parsed as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from contracts.queues import all_queues
from shared.settings import Settings
from shared.waiting import wait_until
from tests.conftest import PostgresServer, embedded_settings, services_settings, unavailable
from tests.e2e.brokers import BrokerUnavailable, throwaway_vhost
from tests.integration.support import System, load_test_companies
from workers.cli import main
from workers.operations.broker_queues import BrokerQueues, broker_queues_for
from workers.runtime import Runtime

SETTLE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Command:
    status: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        assert self.out, f"no output on stdout (exit {self.status}); stderr: {self.err}"
        return json.loads(self.out)


class OperatedSystem(System):
    """The running system, and an operator's terminal pointed at it."""

    def __init__(self, runtime: Runtime, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(runtime, backend)
        self.capsys = capsys
        self.broker_queues: BrokerQueues = broker_queues_for(runtime.broker, runtime.settings.broker_url)

    @property
    def reachable_from_outside(self) -> bool:
        return self.backend != "embedded"

    def dualwrite(self, *argv: str) -> Command:
        """``dualwrite ARGV`` in this process, with the operator's environment; its exit status and output."""
        self.capsys.readouterr()
        status = main(list(argv))
        captured = self.capsys.readouterr()
        return Command(int(status), captured.out, captured.err)

    def settle(self) -> None:
        """Wait until no queue holds a message, no worker thread holds one, and every outbox is sent.

        Faster than Runtime.wait_until_idle on RabbitMQ (whose broker.join polls each queue ten
        times, 100 ms apart), and it sees what the worker has fetched, which AMQP counts do not.
        """
        names = [queue.name for queue in all_queues()]
        worker = self.runtime.worker

        def idle() -> bool:
            counts = self.broker_queues.counts(names).values()
            if any(c.ready or c.delayed or c.in_flight for c in counts):
                return False
            if worker is not None and (
                worker.work_queue.unfinished_tasks
                or any(consumer.delay_queue.unfinished_tasks for consumer in worker.consumers.values())
            ):
                return False
            return all(side.relay.backlog() == 0 for side in self.runtime.sides.values())

        def idle_three_times_running() -> bool:
            return all(idle() for _ in range(3))

        wait_until(idle_three_times_running, timeout=SETTLE_TIMEOUT, interval=0.05, what="system idle")

    def dead_letter_count(self) -> int:
        return sum(len(self.dead_letters(side)) for side in self.runtime.sides)

    def wait_for_dead_letters(self, count: int) -> None:
        wait_until(lambda: self.dead_letter_count() >= count, timeout=SETTLE_TIMEOUT, what=f"{count} dead letter(s)")
        self.settle()


def operator_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """DUALWRITE_* as an operator sets them to reach the system the workers run on."""
    for name in ("broker_url", "finance_db_url", "dataverse_db_url", "bridge_db_url", "data_dir"):
        value = getattr(settings, name)
        if value is None:
            monkeypatch.delenv(f"DUALWRITE_{name.upper()}", raising=False)
        else:
            monkeypatch.setenv(f"DUALWRITE_{name.upper()}", str(value))
    monkeypatch.setenv("DUALWRITE_LOG_LEVEL", "WARNING")


def settings_for(
    request: pytest.FixtureRequest, broker: str, data_dir: Path, cleanup: ExitStack, *, reset_schema: bool = True
) -> Settings:
    """Settings of the backend named ``broker``; services are reserved for the test and emptied
    (the databases' schema too, unless the caller makes its tables with :func:`fresh_tables`)."""
    if broker == "embedded":
        return embedded_settings(data_dir)
    postgres = request.getfixturevalue("postgres_server")
    if broker == "redis":
        url = request.getfixturevalue("redis_db").url
    else:
        try:
            url = cleanup.enter_context(throwaway_vhost())
        except BrokerUnavailable as error:
            unavailable("RabbitMQ", error)
    if reset_schema:
        postgres.reset()
    return services_settings(url, postgres, data_dir)


def fresh_tables(request: pytest.FixtureRequest, broker: str) -> Callable[[Runtime], None]:
    """How the runtime's tables are made on the backend named ``broker``: empty, as on a fresh schema
    (on PostgreSQL made once and emptied for each test afterwards: tests/conftest.py)."""
    if broker == "embedded":
        return Runtime.create_tables
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    return lambda runtime: postgres.fresh_tables(tuple(sorted(runtime.sides)), runtime.create_tables)


@contextmanager
def running_system(
    settings: Settings,
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_tables: Callable[[Runtime], None] = Runtime.create_tables,
) -> Iterator[OperatedSystem]:
    """The three workers running on the backend, and the operator's environment pointing at them."""
    runtime = Runtime(settings)
    try:
        make_tables(runtime)
        load_test_companies(runtime)
        runtime.start()
        operator_environment(monkeypatch, settings)
        system = OperatedSystem(runtime, name, capsys)
        yield system
        system.broker_queues.close()
    finally:
        runtime.stop()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def operated(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[OperatedSystem]:
    """The system on the real Redis or a throwaway RabbitMQ vhost, with real PostgreSQL."""
    with ExitStack() as cleanup:
        settings = settings_for(request, request.param, tmp_path / "data", cleanup, reset_schema=False)
        with running_system(settings, request.param, monkeypatch, capsys, fresh_tables(request, request.param)) as system:
            yield system


@pytest.fixture
def operated_embedded(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[OperatedSystem]:
    """The system on the embedded default: fakeredis in this process and SQLite files."""
    with ExitStack() as cleanup:
        settings = settings_for(request, "embedded", tmp_path / "data", cleanup)
        with running_system(settings, "embedded", monkeypatch, capsys) as system:
            yield system
