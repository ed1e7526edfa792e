"""Wires one carrier per declared table map to the map's outbound queue, and the release of held messages."""

from __future__ import annotations

from contracts.catalog import default_registry
from contracts.envelope import Side
from contracts.maps import MAPS
from contracts.queues import table_map
from shared.consumer import Endpoint
from shared.periodic import PeriodicTask
from shared.settings import Settings
from shared.side import SideRuntime, SideSpec
from workers.bridge.handlers import MapCarrier
from workers.bridge.release import HeldMessageRelease
from workers.bridge.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    registry = default_registry()
    return [Endpoint(table_map(each.name).outbound, {each.contract: MapCarrier(each, registry)}) for each in MAPS]


def periodic(runtime: SideRuntime, settings: Settings) -> list[PeriodicTask]:
    """Resumed maps' held messages are released on the outbox relay's timer."""
    release = HeldMessageRelease.of(runtime)
    return [PeriodicTask("bridge-held-release", settings.outbox_sweep_seconds, release)]


SPEC = SideSpec(side=Side.BRIDGE, metadata=metadata, messaging=messaging, endpoints=endpoints, periodic=periodic)
