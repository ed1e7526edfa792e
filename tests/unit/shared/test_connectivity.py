"""The wait for a worker's services: bounded, a log line per failed attempt, passwords hidden, stoppable."""

from __future__ import annotations

from typing import Any

import pytest

from shared.connectivity import MAX_PAUSE_SECONDS, Service, Stopped, describe, services_of, wait_for_services

SECRET = "Sup3r-secret"


class Clock:
    """Time that passes only when the wait pauses."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> bool:
        self.pauses.append(seconds)
        self.now += seconds
        return False


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def refused(url: str, timeout: float) -> None:
    raise ConnectionError(f"Error 111 connecting to {url}. Connection refused.")


def answers(url: str, timeout: float) -> None:
    return None


def test_services_that_answer_at_once_are_waited_for_not_at_all() -> None:
    clock, log = Clock(), Log()

    found = wait_for_services([Service("broker", "redis://h/0", answers)], 30, log=log, stop_within=clock.pause, clock=clock)

    assert found is None and log.lines == [] and clock.pauses == []


def test_an_unreachable_service_is_retried_until_the_deadline_then_reported_without_its_password() -> None:
    clock, log = Clock(), Log()
    broker = Service("broker", f"redis://:{SECRET}@127.0.0.1:1/0", refused)
    database = Service("finance database", f"postgresql://app:{SECRET}@db/finance", answers)

    found = wait_for_services([broker, database], 30, log=log, stop_within=clock.pause, clock=clock)

    assert found is not None and [s.name for s in found.services] == ["broker"]
    assert sum(clock.pauses) == pytest.approx(30) and max(clock.pauses) == MAX_PAUSE_SECONDS
    assert clock.pauses[:4] == [0.5, 1.0, 2.0, 4.0]  # backing off
    assert [event for event, _ in log.lines[:-1]] == ["cannot reach the broker; retrying"] * (len(log.lines) - 1)
    assert log.lines[-1][0] == "cannot reach the broker; giving up"
    assert [fields["attempt"] for _, fields in log.lines] == list(range(1, found.attempts + 1))
    message = found.message(30)
    assert "redis://:***@127.0.0.1:1/0" in message and "Connection refused" in message and "is 30" in message
    assert SECRET not in message + repr(log.lines)


def test_a_service_that_comes_up_while_waited_for_ends_the_wait() -> None:
    clock, log = Clock(), Log()
    calls = []

    def comes_up_third_time(url: str, timeout: float) -> None:
        calls.append(timeout)
        if len(calls) < 3:
            raise ConnectionError("not yet")

    found = wait_for_services([Service("broker", "amqp://h/", comes_up_third_time)], 30, log=log, stop_within=clock.pause, clock=clock)

    assert found is None and len(log.lines) == 2 and len(calls) == 3


def test_each_attempt_is_bounded_too() -> None:
    clock, timeouts = Clock(), []

    def slow(url: str, timeout: float) -> None:
        timeouts.append(timeout)
        raise TimeoutError("timed out")

    wait_for_services([Service("broker", "redis://h/0", slow)], 12, log=Log(), stop_within=clock.pause, clock=clock)

    assert max(timeouts) <= 5 and min(timeouts) >= 1


def test_a_stop_signal_during_the_wait_stops_it() -> None:
    with pytest.raises(Stopped):
        wait_for_services([Service("broker", "redis://h/0", refused)], 30, log=Log(), stop_within=lambda seconds: True)


def test_a_timeout_of_zero_is_one_attempt() -> None:
    clock, log = Clock(), Log()

    found = wait_for_services([Service("broker", "redis://h/0", refused)], 0, log=log, stop_within=clock.pause, clock=clock)

    assert found is not None and found.attempts == 1 and clock.pauses == []
    assert [event for event, _ in log.lines] == ["cannot reach the broker; giving up"]


def test_the_embedded_broker_is_not_checked() -> None:
    assert [s.name for s in services_of("embedded://", {"finance": "sqlite:///x"})] == ["finance database"]


def test_describe_is_one_line_and_never_empty() -> None:
    class Silent(Exception):
        def __str__(self) -> str:
            return ""

    assert describe(OSError("line one\n\tline two")) == "OSError: line one line two"
    assert describe(Silent(ConnectionRefusedError(111, "Connection refused"))) == "Silent: [Errno 111] Connection refused"
    assert describe(Silent()) == "Silent"
