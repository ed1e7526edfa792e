"""The queue topology: one queue per table map and direction, and a command queue per side.

A table map runs through the bridge, so each map has two queues, both named
``<map>.<from>-to-<to>``: ``msdyn_expensecategories.finance-to-bridge`` then
``msdyn_expensecategories.bridge-to-dataverse``. An operator reads the map and the direction
from the name alone.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from contracts.envelope import Side
from contracts.maps import MAPS


@dataclass(frozen=True)
class TableMap:
    """A dual-write table map: which side masters the rows and which side receives them."""

    name: str
    source: Side
    target: Side
    #: A two-way map also carries the target side's changes back: ``<map>.<target>-to-bridge``, then
    #: ``<map>.bridge-to-<source>`` (see contracts/row_versions.py for who wins a conflict).
    two_way: bool = False

    @property
    def outbound(self) -> "Queue":
        """The queue the source side publishes to and the bridge consumes."""
        return Queue(f"{self.name}.{self.source}-to-bridge", Side.BRIDGE, self.name)

    @property
    def inbound(self) -> "Queue":
        """The queue the bridge publishes to and the target side consumes."""
        return Queue(f"{self.name}.bridge-to-{self.target}", self.target, self.name)

    @property
    def reverse_outbound(self) -> "Queue":
        """Two-way maps: the queue the target side publishes its own changes to, for the bridge."""
        return Queue(f"{self.name}.{self.target}-to-bridge", Side.BRIDGE, self.name)

    @property
    def reverse_inbound(self) -> "Queue":
        """Two-way maps: the queue the bridge carries the target side's changes on, to the source side."""
        return Queue(f"{self.name}.bridge-to-{self.source}", self.source, self.name)

    @property
    def queues(self) -> list["Queue"]:
        """The map's legs: source to bridge to target, then (two-way maps) target to bridge to source."""
        legs = [self.outbound, self.inbound]
        return legs + [self.reverse_outbound, self.reverse_inbound] if self.two_way else legs


@dataclass(frozen=True)
class Queue:
    """A queue, the side that consumes it, and the table map it belongs to (None for commands)."""

    name: str
    consumer: Side
    table_map: str | None = None
    producer: str = "upstream"

    @property
    def actor_name(self) -> str:
        """The dramatiq actor that consumes this queue; publishers put it in ``actor_name``."""
        return _actor_name(self.name)

    @property
    def direction(self) -> str:
        if self.table_map is None:
            return f"{self.producer} -> {self.consumer}"
        source, target = self.name.rsplit(".", 1)[1].split("-to-")
        return f"{source} -> {target}"


#: One per declared map (``contracts/maps.yaml``), in the order declared.
TABLE_MAPS: tuple[TableMap, ...] = tuple(TableMap(each.name, each.source, each.target, each.two_way) for each in MAPS)

FINANCE_COMMANDS = Queue("finance.commands", Side.FINANCE)
DATAVERSE_COMMANDS = Queue("dataverse.commands", Side.DATAVERSE)
#: Dataverse's automated approvals run as system jobs, queued by Dataverse itself.
DATAVERSE_SYSTEM_JOBS = Queue("dataverse.system-jobs", Side.DATAVERSE, producer="dataverse")
#: Initial sync: the master side reports each page it exported to the bridge (contracts/initial_sync.py).
BRIDGE_INITIAL_SYNC = Queue("bridge.initial-sync", Side.BRIDGE, producer="master side")
#: A map's message dead-lettered by the side the bridge carried it to, reported back for the map's
#: activity log and alert rules (contracts/map_failures.py). One queue for every map: the report names it.
BRIDGE_MAP_FAILURES = Queue("bridge.map-failures", Side.BRIDGE, producer="target side")


def table_map(name: str) -> TableMap:
    for candidate in TABLE_MAPS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no table map named {name!r}")


def all_queues() -> list[Queue]:
    """Every queue of the system, commands first, then each map's two legs."""
    queues = [FINANCE_COMMANDS, DATAVERSE_COMMANDS, DATAVERSE_SYSTEM_JOBS, BRIDGE_INITIAL_SYNC, BRIDGE_MAP_FAILURES]
    for each in TABLE_MAPS:
        queues += each.queues
    return queues


def queues_consumed_by(side: Side) -> list[Queue]:
    return [queue for queue in all_queues() if queue.consumer is side]


@functools.lru_cache(maxsize=256)
def _actor_name(queue_name: str) -> str:
    # Asked for every message sent: worked out once per queue (bounded: a name may come from input).
    return "receive_" + re.sub(r"[^a-z0-9]+", "_", queue_name)
