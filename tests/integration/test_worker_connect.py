"""A worker that cannot reach its broker or its database retries for DUALWRITE_CONNECT_TIMEOUT_SECONDS, then exits 4.

Each worker runs as a process of its own (``python -m workers worker SIDE``), as a deployment runs
it. Unreachable services are closed ports of this machine: no server needed. Every URL carries a
password, which no line of the worker's output may show.

The workers facing closed ports are all started together, the first time a test asks for one
(``unreachable``): each waits out its own timeout, or its own signal, while the others do, instead
of one after the other. Each test still checks its own worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.waiting import wait_until
from tests.conftest import PostgresServer, RedisServer
from tests.in_process_cli import run_dualwrite
from workers.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-Secret-pw"
SIDES = ("finance", "dataverse", "bridge")
CLOSED_DATABASE = f"postgresql://dualwrite:{SECRET}@127.0.0.1:1/finance"
CLOSED_BROKERS = {
    "redis": f"redis://:{SECRET}@127.0.0.1:1/0",
    "rabbitmq": f"amqp://dualwrite:{SECRET}@127.0.0.1:1/%2F",
}
TIMEOUT = 2.0
#: Start-up (imports: seconds on a busy machine) and the last attempt, on top of the timeout.
SLACK = 45.0


def worker_environment(tmp_path: Path, broker_url: str, database_urls: dict[str, str], **settings: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DUALWRITE_")}
    environment.update(
        {
            "DUALWRITE_BROKER_URL": broker_url,
            "DUALWRITE_DATA_DIR": str(tmp_path / "data"),
            "DUALWRITE_LOG_LEVEL": "INFO",
            "DUALWRITE_LOG_FORMAT": "json",
            **{f"DUALWRITE_{side.upper()}_DB_URL": url for side, url in database_urls.items()},
            **settings,
        }
    )
    return environment


@dataclass(frozen=True)
class Run:
    """A finished worker process: its exit status, output, and how long it ran (or took to stop)."""

    returncode: int
    stdout: str
    stderr: str
    took: float


def run_to_the_end(environment: dict[str, str], timeout: float) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "workers", "worker", "finance"],
        env=environment, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def stopped_while_waiting(environment: dict[str, str], log: Path) -> Run:
    """Started, SIGTERMed once it logged its first retry; ``took`` is from the signal to its exit."""
    with open(log, "w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker", "finance"],
            env=environment, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        wait_until(lambda: "retrying" in log.read_text(), timeout=SLACK, interval=0.05, what="the worker waiting for its broker")
        stopping = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=SLACK)
        return Run(status, "", log.read_text(), time.monotonic() - stopping)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Run]]]:
    """The finance worker facing closed ports, run in four ways at once, by name."""
    folder = tmp_path_factory.mktemp("unreachable")
    closed = {"finance": CLOSED_DATABASE}
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = {
            f"timeout {broker}": pool.submit(
                run_to_the_end,
                worker_environment(folder / broker, url, closed, DUALWRITE_CONNECT_TIMEOUT_SECONDS=str(TIMEOUT)),
                TIMEOUT + SLACK,
            )
            for broker, url in CLOSED_BROKERS.items()
        }
        runs["no wait"] = pool.submit(
            run_to_the_end,
            worker_environment(folder / "no-wait", CLOSED_BROKERS["redis"], closed, DUALWRITE_CONNECT_TIMEOUT_SECONDS="0"),
            SLACK,
        )
        runs["sigterm"] = pool.submit(
            stopped_while_waiting,
            worker_environment(folder / "sigterm", CLOSED_BROKERS["redis"], closed, DUALWRITE_CONNECT_TIMEOUT_SECONDS="600"),
            folder / "sigterm.log",
        )
        yield runs


@pytest.mark.parametrize("broker", list(CLOSED_BROKERS))
def test_a_worker_that_cannot_reach_its_services_exits_4_after_the_timeout(broker: str, unreachable: dict[str, Future[Run]]) -> None:
    # When the finance worker starts with neither its broker nor its database listening
    done = unreachable[f"timeout {broker}"].result()

    # Then it retries, a line per attempt, and gives up after the timeout with exit 4 and a clear message
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert TIMEOUT <= done.took < TIMEOUT + SLACK, done.took
    assert done.stderr.count('"event": "cannot reach the broker; retrying"') >= 2, done.stderr
    assert done.stderr.count('"event": "cannot reach the finance database; retrying"') >= 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("dualwrite: cannot reach the broker at "), last
    assert "the finance database at postgresql://dualwrite:***@127.0.0.1:1/finance" in last, last
    assert "DUALWRITE_CONNECT_TIMEOUT_SECONDS is 2" in last, last
    # And no password anywhere
    assert SECRET not in done.stdout + done.stderr
    assert "***@127.0.0.1:1" in last
    assert "Traceback" not in done.stderr and "worker started" not in done.stderr


def test_with_no_wait_a_worker_gives_up_at_the_first_refusal(unreachable: dict[str, Future[Run]]) -> None:
    done = unreachable["no wait"].result()

    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert '"event": "cannot reach the broker; giving up"' in done.stderr and "retrying" not in done.stderr, done.stderr
    assert SECRET not in done.stderr


def test_sigterm_while_a_worker_waits_for_its_services_stops_it_at_once(unreachable: dict[str, Future[Run]]) -> None:
    done = unreachable["sigterm"].result()

    # It stops at once (not after the 600 s timeout), having consumed nothing: exit 0
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.took < SLACK
    assert '"event": "worker stopped before it started"' in done.stderr


@pytest.mark.redis
@pytest.mark.postgres
def test_a_worker_reaching_its_services_with_passwords_logs_none(
    tmp_path: Path, redis_db: RedisServer, postgres_server: PostgresServer
) -> None:
    """PostgreSQL takes any password from this machine and Redis ignores one it does not ask for: the
    URLs carry SECRET, and the worker starts, logs at DEBUG, and stops without printing it."""
    postgres_server.reset()
    databases = {side: _with_password(url) for side, url in postgres_server.urls.items()}
    environment = worker_environment(
        tmp_path, f"redis://:{SECRET}@{redis_db.url.split('://', 1)[1]}", databases, DUALWRITE_LOG_LEVEL="DEBUG"
    )
    # `dualwrite db upgrade` as an operator runs it first (in this process: tests/in_process_cli.py); the worker's own process next
    upgrade = run_dualwrite(["db", "upgrade", "--json"], environment)
    assert upgrade.returncode == 0, upgrade.stderr
    log = tmp_path / "worker.log"
    with open(log, "w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers", "worker", "bridge"],
            env=environment, cwd=REPO, stdin=subprocess.DEVNULL, stdout=stderr, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "worker started" in log.read_text(), timeout=60, interval=0.1, what="worker started")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == ExitCode.OK, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    printed = upgrade.stdout + upgrade.stderr + log.read_text()
    assert SECRET not in printed
    assert "Traceback" not in printed


def _with_password(url: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':', 1)[0]}:{SECRET}@{host}"
