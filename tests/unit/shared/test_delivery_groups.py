"""Group commit of one queue's deliveries: alone when alone, together when they wait, alone again
when their group fails."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from shared.delivery_groups import ALONE, DeliveryGroups
from shared.waiting import wait_until


class Recorder:
    """Applies groups by recording them; ``fail_on`` makes a group holding that item raise."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.groups.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"{self.fail_on} is bad")
        return [f"{item}: applied together" for item in items]


def alone(
    item: str, *, hold: threading.Event | None = None, entered: threading.Event | None = None
) -> Callable[[], str]:
    def apply() -> str:
        if entered is not None:
            entered.set()
        if hold is not None:
            assert hold.wait(10), "the test never released the first delivery"
        return f"{item}: applied alone"

    return apply


def submit_while_held(
    groups: DeliveryGroups[str, str], items: list[str], rows: int = 1
) -> tuple[Future[str], list[Future[str]]]:
    """The first item holds the turn until every other one waits for it; then it is released."""
    hold, entered = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(items))
    first = pool.submit(groups.submit, items[0], rows, alone(items[0], hold=hold, entered=entered))
    assert entered.wait(10), "the first delivery never took the turn"
    others = []
    for item in items[1:]:
        others.append(pool.submit(groups.submit, item, rows, alone(item)))
        wait_until(lambda n=len(others): groups.waiting() == n, timeout=10, what=f"{item} waiting for the turn")
    hold.set()
    pool.shutdown(wait=True)
    return first, others


def test_a_lone_delivery_is_applied_alone_at_once() -> None:
    recorder = Recorder()
    groups: DeliveryGroups[str, str] = DeliveryGroups(recorder, max_rows=1000)

    assert groups.submit("a", 1, alone("a")) == "a: applied alone"
    assert groups.submit("b", 1, alone("b")) == "b: applied alone"
    assert recorder.groups == []
    assert groups.waiting() == 0


def test_deliveries_that_wait_for_the_turn_are_applied_together_each_with_its_own_result() -> None:
    recorder = Recorder()
    groups: DeliveryGroups[str, str] = DeliveryGroups(recorder, max_rows=1000)

    first, others = submit_while_held(groups, ["a", "b", "c", "d"])

    assert first.result() == "a: applied alone"
    assert [other.result() for other in others] == ["b: applied together", "c: applied together", "d: applied together"]
    assert recorder.groups == [["b", "c", "d"]]
    assert groups.waiting() == 0


def test_a_failed_group_tells_each_delivery_to_apply_itself_alone() -> None:
    recorder = Recorder(fail_on="c")
    groups: DeliveryGroups[str, str] = DeliveryGroups(recorder, max_rows=1000)

    _, others = submit_while_held(groups, ["a", "b", "c", "d"])

    assert [other.result() for other in others] == [ALONE, ALONE, ALONE]
    assert recorder.groups == [["b", "c", "d"]]


def test_a_group_stays_within_its_rows_and_the_rest_form_the_next_group() -> None:
    recorder = Recorder()
    groups: DeliveryGroups[str, str] = DeliveryGroups(recorder, max_rows=20)

    _, others = submit_while_held(groups, ["a", "b", "c", "d", "e"], rows=8)

    # b and c fill 16 of the 20 rows; d and e wait for the next turn, and go together then
    assert recorder.groups == [["b", "c"], ["d", "e"]]
    assert [other.result() for other in others] == [f"{item}: applied together" for item in "bcde"]


def test_an_exception_of_the_lone_delivery_is_its_own_and_frees_the_turn() -> None:
    groups: DeliveryGroups[str, str] = DeliveryGroups(Recorder(), max_rows=1000)

    def broken() -> str:
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        groups.submit("a", 1, broken)
    assert groups.submit("b", 1, alone("b")) == "b: applied alone"
