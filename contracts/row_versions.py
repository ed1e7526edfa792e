"""The version each row of a two-way table map carries, and who wins when both sides change a row.

A row's version is a counter and the side that made it: ``row_version`` and ``row_origin`` in the
row of every message of the map, stored with the row on both sides. A side that changes a row
itself makes the next version (``counter + 1``, its own name); a side that applies a row it
received through the bridge keeps the version the row came with.

Versions are ordered by counter, and at an equal counter the map's master comes first. Two
changes made on both sides from the same version (the same counter + 1) are a conflict: the
master's is the newer, so the master wins. Every place that decides (each side applying a row,
the bridge carrying one) applies the same order, "keep the newer": whatever order the changes
arrive in, both sides end with the newest version, and the bridge, which sees both directions,
records the losing change.

Counter 0 means "unversioned": rows stored before versions existed, and rows of messages
published in version 1 of a contract (upcast with counter 0). An unversioned row is applied
over an unversioned one, as before versions, never over a versioned one.

Plain functions and values: the sides, the bridge and the tests call them alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from contracts.envelope import Side

#: The row fields that carry the version in a two-way map's messages, and the columns that store it.
VERSION_FIELDS = ("row_version", "row_origin")

class Origin(StrEnum):
    """What ``row_origin`` may say: one of the two sides that change rows."""

    FINANCE = "finance"
    DATAVERSE = "dataverse"


@dataclass(frozen=True)
class RowVersion:
    """The version of one row: a counter, and the side whose change it is."""

    counter: int
    origin: Side

    @classmethod
    def of(cls, row: Mapping[str, Any] | Any) -> "RowVersion":
        """The version of a row (a mapping) or a record (an object with the two attributes)."""
        if isinstance(row, Mapping):
            return cls(int(row["row_version"]), Side(row["row_origin"]))
        return cls(int(row.row_version), Side(row.row_origin))

    @property
    def unversioned(self) -> bool:
        return self.counter == 0

    def as_fields(self) -> dict[str, Any]:
        return {"row_version": self.counter, "row_origin": self.origin.value}

    def __str__(self) -> str:
        return f"{self.counter} ({self.origin.value})"


def rank(version: RowVersion, master: Side) -> tuple[int, int]:
    """The sort key: the counter, then the master before the other side."""
    return version.counter, 1 if version.origin == master else 0


def is_newer(incoming: RowVersion, held: RowVersion, master: Side) -> bool:
    return rank(incoming, master) > rank(held, master)


def next_version(held: RowVersion | None, side: Side) -> RowVersion:
    """The version of a change ``side`` makes to a row it holds at ``held`` (None: a new row)."""
    return RowVersion((held.counter if held is not None else 0) + 1, side)


# -- a side changing a row itself ----------------------------------------------------------------


def content(record: Any) -> dict[str, Any]:
    """A dataclass record's fields other than its version: what a change changes."""
    return {name: value for name, value in dataclasses.asdict(record).items() if name not in VERSION_FIELDS}


def stamp_local_change(held: Any | None, changed: Any, side: Side) -> Any:
    """``changed`` (a dataclass record with the version fields) with the version it gets on ``side``.

    A change that changes nothing keeps the version it had, so a command repeated with the same
    values makes no new version (nothing to carry, nothing to conflict with).
    """
    if held is not None and content(held) == content(changed):
        return dataclasses.replace(changed, row_version=held.row_version, row_origin=held.row_origin)
    version = next_version(RowVersion.of(held) if held is not None else None, side)
    return dataclasses.replace(changed, **version.as_fields())


def own_changes(records: list[Any], side: Side) -> list[Any]:
    """The records whose current version ``side`` made: the only ones it publishes.

    A row whose version came through the bridge is not sent back: that would be an echo.
    """
    return [record for record in records if RowVersion.of(record).origin == side]


# -- a side applying a row it received through the bridge ----------------------------------------


class SideOutcome(StrEnum):
    """What a side does with a row it received through the bridge."""

    APPLY = "apply"
    #: It holds this very version already (a repeat, or the echo of its own change).
    SAME = "same"
    #: It holds a newer version: the change is older than what it has.
    OLDER = "older"
    #: It holds a change made from the same version by the master: the incoming one lost.
    LOST = "lost"

    @property
    def applies(self) -> bool:
        return self is SideOutcome.APPLY


def decide_on_side(held: RowVersion | None, incoming: RowVersion, master: Side) -> SideOutcome:
    """Apply only a newer version: never an older or a losing one."""
    if held is None:
        return SideOutcome.APPLY
    if incoming.unversioned:
        return SideOutcome.APPLY if held.unversioned else SideOutcome.OLDER
    if incoming == held:
        return SideOutcome.SAME
    if is_newer(incoming, held, master):
        return SideOutcome.APPLY
    return SideOutcome.LOST if incoming.counter == held.counter else SideOutcome.OLDER


# -- the bridge, which sees both directions ------------------------------------------------------


class BridgeOutcome(StrEnum):
    """What the bridge does with a row, given the version it last carried for the row's key."""

    #: Newer than anything carried: carried on.
    CARRY = "carry"
    #: The master's change made from the same version as the other side's, carried before it: the
    #: master wins, so it is carried on (and overwrites the loser on the other side).
    CONFLICT_WON = "conflict-won"
    #: The other side's change made from a version the master had changed already: dropped.
    CONFLICT_LOST = "conflict-lost"
    #: The version the bridge carried to this side, sent back by it: dropped.
    ECHO = "echo"
    #: The version the bridge carried from this side already (a repeat, an initial sync's copy): dropped.
    REPEAT = "repeat"
    #: An older change of the same side, arriving after a newer one: dropped.
    STALE = "stale"
    #: A row of a message without versions (contract version 1): carried as before, not tracked.
    UNVERSIONED = "unversioned"

    @property
    def carries(self) -> bool:
        return self in (BridgeOutcome.CARRY, BridgeOutcome.CONFLICT_WON, BridgeOutcome.UNVERSIONED)

    @property
    def is_conflict(self) -> bool:
        return self in (BridgeOutcome.CONFLICT_WON, BridgeOutcome.CONFLICT_LOST)


def decide_at_bridge(carried: RowVersion | None, incoming: RowVersion, sent_by: Side, master: Side) -> BridgeOutcome:
    """Carry the newer version; drop echoes, repeats and losers; say which conflicts were decided."""
    if incoming.unversioned:
        return BridgeOutcome.UNVERSIONED
    if carried is None or carried.unversioned:
        return BridgeOutcome.CARRY
    if incoming == carried:
        return BridgeOutcome.REPEAT if carried.origin == sent_by else BridgeOutcome.ECHO
    if is_newer(incoming, carried, master):
        conflict = incoming.counter == carried.counter and incoming.origin != carried.origin
        return BridgeOutcome.CONFLICT_WON if conflict else BridgeOutcome.CARRY
    if incoming.origin == carried.origin:
        return BridgeOutcome.STALE
    return BridgeOutcome.CONFLICT_LOST


def loser(outcome: BridgeOutcome, carried: RowVersion, incoming: RowVersion) -> RowVersion:
    """The losing version of a conflict: the one carried before (conflict won) or the incoming one."""
    return carried if outcome is BridgeOutcome.CONFLICT_WON else incoming
