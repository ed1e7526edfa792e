"""Deliveries of one queue that arrive while another is being applied wait, and are applied together.

This is group commit, as databases do it for their log. One delivery at a time holds the queue's
*turn*: a delivery that finds the turn free takes it and is applied at once, alone, exactly as it
would be without grouping (so light load gains nothing and loses nothing). Deliveries that arrive
meanwhile on other worker threads wait; when the turn is passed on, the first of them takes every
delivery then waiting (up to ``max_rows`` rows in all) and applies them in one go. Under load the
groups grow by themselves to the number of threads waiting; idle, a group is one delivery.

Each delivery keeps its own outcome: the function that applies a group returns one result per
delivery. If it raises, nothing of the group is kept (it ran in one transaction) and each delivery
is told to apply itself alone (``ALONE``), in its own thread, as if there had been no group: one
delivery's bad content never decides another's fate.

The coordination only; what applying means is the caller's (``shared.consumer``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Alone:
    """The outcome that tells a delivery to apply itself alone (its group failed)."""

    def __repr__(self) -> str:
        return "ALONE"


ALONE = _Alone()


@dataclass(eq=False)
class _Waiting(Generic[T, R]):
    item: T
    rows: int
    woken: threading.Event = field(default_factory=threading.Event)
    #: Set by the thread that holds the turn: pass it on to this delivery's thread.
    leads: bool = False
    outcome: R | _Alone = ALONE


class DeliveryGroups(Generic[T, R]):
    """The turn of one queue, and the deliveries waiting for it."""

    def __init__(self, apply_group: Callable[[Sequence[T]], Sequence[R]], *, max_rows: int) -> None:
        self._apply_group = apply_group
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._waiting: list[_Waiting[T, R]] = []
        self._turn_taken = False

    def waiting(self) -> int:
        """How many deliveries wait for the turn while it is held."""
        with self._lock:
            return len(self._waiting)

    def submit(self, item: T, rows: int, alone: Callable[[], R]) -> R | _Alone:
        """Apply ``item``: by ``alone()`` when no other delivery waits with it, else in a group.

        Returns what ``alone()`` returned, this item's result from the group, or ``ALONE`` when its
        group failed and the caller must apply it alone. Exceptions of ``alone()`` propagate.
        """
        waiting: _Waiting[T, R] = _Waiting(item, rows)
        with self._lock:
            self._waiting.append(waiting)
            leads = not self._turn_taken
            self._turn_taken = True
        if not leads:
            waiting.woken.wait()
            if not waiting.leads:
                return waiting.outcome
        try:
            group = self._take_group()
            if len(group) == 1:
                return alone()
            self._apply(group)
            return waiting.outcome
        finally:
            self._pass_turn()

    def _take_group(self) -> list[_Waiting[T, R]]:
        """The deliveries waiting, oldest first (the turn's holder is the oldest), up to ``max_rows``."""
        with self._lock:
            taken, rows = 1, self._waiting[0].rows
            while taken < len(self._waiting) and rows + self._waiting[taken].rows <= self._max_rows:
                rows += self._waiting[taken].rows
                taken += 1
            group = self._waiting[:taken]
            del self._waiting[:taken]
        return group

    def _apply(self, group: list[_Waiting[T, R]]) -> None:
        """Apply the group and give every delivery its outcome; the others' threads are woken.

        Whatever happens (an exception of any kind included), every delivery of the group gets an
        outcome: its result, or ``ALONE``.
        """
        try:
            results = self._apply_group([waiting.item for waiting in group])
            if len(results) != len(group):
                raise RuntimeError(f"a group of {len(group)} deliveries gave {len(results)} results")
            for waiting, result in zip(group, results, strict=True):
                waiting.outcome = result
        except Exception:  # noqa: BLE001 - each delivery is applied alone, and fails alone if it must
            for waiting in group:
                waiting.outcome = ALONE
        finally:
            for waiting in group[1:]:
                waiting.woken.set()

    def _pass_turn(self) -> None:
        with self._lock:
            if not self._waiting:
                self._turn_taken = False
                return
            following = self._waiting[0]
            following.leads = True
        following.woken.set()
