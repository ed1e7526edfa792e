"""Row versions of two-way maps: who applies, carries, drops or wins, as plain decisions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from contracts.envelope import Side
from contracts.row_versions import (
    BridgeOutcome,
    RowVersion,
    SideOutcome,
    decide_at_bridge,
    decide_on_side,
    loser,
    next_version,
    own_changes,
    stamp_local_change,
)

F, D = Side.FINANCE, Side.DATAVERSE
MASTER = D


def v(counter: int, origin: Side) -> RowVersion:
    return RowVersion(counter, origin)


@dataclass(frozen=True)
class Record:
    name: str
    row_version: int = 0
    row_origin: str = "dataverse"


# -- a side changing a row itself ----------------------------------------------------------------


def test_a_local_change_makes_the_next_version_in_the_side_s_name() -> None:
    assert next_version(None, F) == v(1, F)
    assert next_version(v(4, D), F) == v(5, F)


def test_a_change_that_changes_nothing_keeps_the_version_it_had() -> None:
    held = Record("Audit", 3, "finance")
    assert stamp_local_change(held, Record("Audit", 3, "finance"), D) == held
    assert stamp_local_change(held, Record("Audit 2026", 3, "finance"), D) == Record("Audit 2026", 4, "dataverse")
    assert stamp_local_change(None, Record("New"), D) == Record("New", 1, "dataverse")


def test_a_side_publishes_only_the_versions_it_made_itself() -> None:
    mine, carried_in = Record("A", 2, "dataverse"), Record("B", 2, "finance")
    assert own_changes([mine, carried_in], D) == [mine]


# -- a side applying a row it received -----------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "incoming", "outcome"),
    [
        (None, v(1, D), SideOutcome.APPLY),
        (v(1, D), v(2, F), SideOutcome.APPLY),
        (v(2, F), v(2, F), SideOutcome.SAME),
        (v(3, D), v(2, D), SideOutcome.OLDER),
        # Both changed from version 1: the master's change wins on both sides.
        (v(2, D), v(2, F), SideOutcome.LOST),
        (v(2, F), v(2, D), SideOutcome.APPLY),
        # Unversioned rows (contract v1) apply over unversioned rows only.
        (v(0, D), v(0, D), SideOutcome.APPLY),
        (v(1, D), v(0, D), SideOutcome.OLDER),
        (v(0, D), v(1, F), SideOutcome.APPLY),
    ],
)
def test_a_side_applies_only_a_newer_version(held, incoming, outcome) -> None:
    assert decide_on_side(held, incoming, MASTER) is outcome


# -- the bridge ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("carried", "incoming", "sent_by", "outcome"),
    [
        (None, v(1, D), D, BridgeOutcome.CARRY),
        (v(1, D), v(2, F), F, BridgeOutcome.CARRY),
        # Finance sends back the version the bridge carried to it: an echo.
        (v(1, D), v(1, D), F, BridgeOutcome.ECHO),
        # Dataverse's initial sync sends a version of finance's the bridge carried to it: an echo too.
        (v(2, F), v(2, F), D, BridgeOutcome.ECHO),
        # Dataverse sends again what the bridge carried from it: a repeat.
        (v(1, D), v(1, D), D, BridgeOutcome.REPEAT),
        (v(3, D), v(2, D), D, BridgeOutcome.STALE),
        # Both changed from version 1. Master first: finance's change lost, dropped.
        (v(2, D), v(2, F), F, BridgeOutcome.CONFLICT_LOST),
        # Finance first: carried, then the master's change wins and is carried over it.
        (v(2, F), v(2, D), D, BridgeOutcome.CONFLICT_WON),
        # Finance changed from a version the master had changed already.
        (v(3, D), v(2, F), F, BridgeOutcome.CONFLICT_LOST),
        (v(1, D), v(0, D), D, BridgeOutcome.UNVERSIONED),
        (v(0, D), v(1, D), D, BridgeOutcome.CARRY),
    ],
)
def test_the_bridge_carries_the_newer_version_and_drops_echoes_and_losers(carried, incoming, sent_by, outcome) -> None:
    assert decide_at_bridge(carried, incoming, sent_by, MASTER) is outcome


def test_a_conflict_names_its_loser_whichever_came_first() -> None:
    master_change, finance_change = v(2, D), v(2, F)
    won = decide_at_bridge(finance_change, master_change, D, MASTER)
    lost = decide_at_bridge(master_change, finance_change, F, MASTER)
    assert loser(won, finance_change, master_change) == finance_change
    assert loser(lost, master_change, finance_change) == finance_change


def test_both_sides_end_with_the_master_s_change_in_every_order_of_arrival() -> None:
    """Both sides change version 1; the bridge sees the two changes in either order, each side
    gets the other's change in either order relative to its own: every interleaving converges."""
    start = v(1, D)
    changes = {D: v(2, D), F: v(2, F)}
    for first, second in itertools.permutations([D, F]):
        held = {D: changes[D], F: changes[F]}
        carried = start
        for sender in (first, second):
            incoming = changes[sender]
            outcome = decide_at_bridge(carried, incoming, sender, MASTER)
            if outcome.carries:
                carried = incoming
                receiver = F if sender is D else D
                if decide_on_side(held[receiver], incoming, MASTER).applies:
                    held[receiver] = incoming
        assert held == {D: v(2, D), F: v(2, D)}, (first, second)
        assert carried == v(2, D)
