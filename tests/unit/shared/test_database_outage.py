"""Which errors are a database outage, how a wait for the database ends, and how often an outage is logged."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from sqlalchemy import exc

from shared.database_outage import Availability, is_database_unavailable
from shared.errors import BusinessRuleViolation
from shared import periodic as periodic_module
from shared.periodic import PeriodicTask
from shared.waiting import wait_until


def wrapped(orig: BaseException, *, invalidated: bool = False) -> exc.DBAPIError:
    return exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(pg_errors.AdminShutdown("terminating connection due to administrator command"), invalidated=True),
        wrapped(psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), invalidated=True),
        wrapped(psycopg.OperationalError('connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused')),
        wrapped(pg_errors.CannotConnectNow("the database system is starting up")),
        wrapped(pg_errors.CrashShutdown("terminating connection because of crash of another server process")),
        wrapped(pg_errors.ConnectionFailure("connection failure")),
        exc.DisconnectionError("pooled connection dropped by the server"),
    ],
    ids=["terminated", "closed unexpectedly", "refused", "starting up", "crash shutdown", "class 08", "disconnection"],
)
def test_an_unreachable_database_is_an_outage(error: BaseException) -> None:
    assert is_database_unavailable(error)


def test_an_outage_is_recognised_through_the_error_raised_from_it() -> None:
    try:
        try:
            raise wrapped(pg_errors.AdminShutdown("terminating connection"), invalidated=True)
        except exc.DBAPIError as cause:
            raise RuntimeError("while applying") from cause
    except RuntimeError as error:
        assert is_database_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        wrapped(pg_errors.QueryCanceled("canceling statement due to statement timeout")),
        wrapped(pg_errors.LockNotAvailable("could not obtain lock")),
        wrapped(pg_errors.DiskFull("could not extend file")),
        exc.IntegrityError("INSERT", {}, pg_errors.UniqueViolation("duplicate key")),
        wrapped(pg_errors.DeadlockDetected("deadlock detected")),
        BusinessRuleViolation("company USMF is unknown"),
        RuntimeError("a bug"),
    ],
    ids=["statement timeout", "lock", "disk full", "unique", "deadlock", "business rule", "bug"],
)
def test_what_the_database_refused_is_no_outage(error: BaseException) -> None:
    assert not is_database_unavailable(error)


class Probe:
    """A database that answers once ``back`` is set; counts the probes."""

    def __init__(self) -> None:
        self.back = threading.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if not self.back.is_set():
            raise psycopg.OperationalError("Connection refused")


def test_waiting_threads_carry_on_once_the_database_answers_and_the_outage_counts_once() -> None:
    probe = Probe()
    availability = Availability("finance", probe)
    for _ in range(3):
        availability.failed(wrapped(pg_errors.AdminShutdown("terminating connection"), invalidated=True))
    assert not availability.up and availability.outages == 1
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(availability.wait(60))) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: probe.calls >= 2, timeout=10, what="the database probed while down")

    probe.back.set()
    for thread in threads:
        thread.join(timeout=30)

    assert results == [True] * 4
    assert availability.up and availability.outages == 1
    assert "Connection refused" in (availability.last_error or "")


def test_a_wait_gives_up_at_its_deadline_or_when_the_worker_stops() -> None:
    availability = Availability("finance", Probe())
    availability.failed(wrapped(psycopg.OperationalError("Connection refused")))
    assert availability.wait(0.3) is False

    waiting: list[bool] = []
    thread = threading.Thread(target=lambda: waiting.append(availability.wait(600)))
    thread.start()
    availability.release()
    thread.join(timeout=30)
    assert waiting == [False] and not availability.up


class _Lines:
    """Records what a module logs (structlog's capture_logs misses a logger cached by an earlier test)."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **values: self.lines.append({"log_level": level, "event": event, **values})


def test_a_periodic_task_logs_an_outage_once_and_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _Lines()
    monkeypatch.setattr(periodic_module, "log", lines)
    down = threading.Event()
    down.set()
    runs: list[str] = []

    def work() -> None:
        if down.is_set():
            raise wrapped(psycopg.OperationalError("Connection refused"))
        runs.append("ran")

    task = PeriodicTask("outbox-relay", 60, work)
    results = [task.run_once() for _ in range(5)]
    down.clear()
    results.append(task.run_once())
    logged = lines.lines
    assert results == [False] * 5 + [True]
    assert runs == ["ran"]
    assert [(line["log_level"], line["event"].split(";")[0]) for line in logged] == [
        ("warning", "periodic task waits for its database"),
        ("info", "periodic task runs again: its database answers"),
    ]
    assert logged[0]["error"] == "OperationalError: Connection refused"
