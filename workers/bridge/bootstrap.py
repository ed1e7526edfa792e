"""Wires one carrier per declared table map to the map's outbound queue, and the release of held messages."""

from __future__ import annotations

from contracts.catalog import default_registry
from contracts.envelope import Side
from contracts.maps import MAPS
from contracts.initial_sync import INITIAL_SYNC_REPORT
from contracts.map_failures import MAP_FAILURE_REPORT
from contracts.queues import BRIDGE_INITIAL_SYNC, BRIDGE_MAP_FAILURES, table_map
from shared.consumer import Endpoint
from shared.periodic import PeriodicTask
from shared.settings import Settings
from shared.side import SideRuntime, SideSpec
from workers.bridge import initial_sync
from workers.bridge.handlers import MapCarrier
from workers.bridge.map_failures import record_target_failures
from workers.bridge.release import HeldMessageRelease
from workers.bridge.tables import messaging, metadata


def endpoints() -> list[Endpoint]:
    registry = default_registry()
    carriers = [Endpoint(table_map(each.name).outbound, {each.contract: MapCarrier(each, registry)}) for each in MAPS]
    carriers += [reverse_endpoint(endpoint) for endpoint in carriers if _two_way(endpoint)]
    return [
        *carriers,
        Endpoint(BRIDGE_INITIAL_SYNC, {INITIAL_SYNC_REPORT.name: initial_sync.record_page_reports}),
        Endpoint(BRIDGE_MAP_FAILURES, {MAP_FAILURE_REPORT.name: record_target_failures}),
    ]


def _two_way(endpoint: Endpoint) -> bool:
    return any(isinstance(h, MapCarrier) and h.declaration.two_way for h in endpoint.handlers.values())


def reverse_endpoint(endpoint: Endpoint) -> Endpoint:
    """A two-way map's target side's changes reach the same carrier: one state, hold and row versions."""
    name = endpoint.queue.table_map
    assert name is not None
    return Endpoint(table_map(name).reverse_outbound, endpoint.handlers)


def periodic(runtime: SideRuntime, settings: Settings) -> list[PeriodicTask]:
    """Resumed maps' held messages are released on the outbox relay's timer."""
    release = HeldMessageRelease.of(runtime)
    return [PeriodicTask("bridge-held-release", settings.outbox_sweep_seconds, release)]


SPEC = SideSpec(side=Side.BRIDGE, metadata=metadata, messaging=messaging, endpoints=endpoints, periodic=periodic)
