"""Wires one carrier per table map to the map's outbound queue."""

from __future__ import annotations

from contracts.envelope import Side
from contracts.queues import TABLE_MAPS
from shared.consumer import Endpoint
from shared.side import SideSpec
from workers.bridge.handlers import RowFilter, carrier
from workers.bridge.tables import messaging, metadata

#: Map filters, as dual-write has them: actuals flagged "skip sync" never reach finance.
FILTERS: dict[str, RowFilter] = {
    "msdyn_actuals": lambda actual: not actual.skip_sync,
}


def endpoints() -> list[Endpoint]:
    return [Endpoint(each.outbound, {each.name: carrier(each, FILTERS.get(each.name))}) for each in TABLE_MAPS]


SPEC = SideSpec(side=Side.BRIDGE, metadata=metadata, messaging=messaging, endpoints=endpoints)
