"""Wires one carrier per table map to the map's outbound queue."""

from __future__ import annotations

from contracts.envelope import Side
from contracts.queues import TABLE_MAPS
from shared.consumer import Endpoint
from shared.side import SideSpec
from workers.bridge.handlers import carrier
from workers.bridge.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    return [Endpoint(each.outbound, {each.name: carrier(each)}) for each in TABLE_MAPS]


SPEC = SideSpec(side=Side.BRIDGE, metadata=metadata, messaging=messaging, endpoints=endpoints)
