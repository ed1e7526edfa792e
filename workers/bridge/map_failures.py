"""Counts each message a table map dead-letters at the bridge, and applies the map's alert rules."""

from __future__ import annotations

import json
from collections.abc import Mapping

import dramatiq
from dramatiq.middleware import Middleware

from shared.logging import get_logger
from shared.side import SideRuntime
from shared.side_database import SideDatabase
from workers.bridge.activity import ActivityKind, record_activity
from workers.bridge.alerts import record_failure
from workers.bridge.handlers import MapRefused
from workers.bridge.map_states import lock_state

log = get_logger(__name__)


class MapFailureWatch(Middleware):
    """Added, like the dead-letter ledger, before dramatiq's Retries: it sees only final failures."""

    def __init__(self, bridge: SideDatabase, maps_by_queue: Mapping[str, str]) -> None:
        self.bridge = bridge
        self.maps_by_queue = maps_by_queue  # a map's outbound queue -> the map

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result=None, exception=None) -> None:  # noqa: ANN001
        if exception is None or not message.failed:
            return
        map_name = self.maps_by_queue.get(message.queue_name)
        if map_name is None:
            return
        correlation_id = _correlation_id(message)
        try:
            with self.bridge.engine.begin() as connection:
                if isinstance(exception, MapRefused):
                    lock_state(connection, map_name)
                    record_activity(
                        connection, map_name, ActivityKind.REFUSED, message_id=message.message_id,
                        correlation_id=correlation_id, detail=str(exception),
                    )
                    return
                fired = record_failure(
                    connection, map_name, f"{type(exception).__name__}: {exception}",
                    message_id=message.message_id, correlation_id=correlation_id,
                )
            if fired is not None:
                log.warning("alert rule fired", map=map_name, rule=fired.describe(), action=fired.action)
        except Exception:
            log.exception("could not count the map's failure", map=map_name, queue=message.queue_name)


def _correlation_id(message: dramatiq.MessageProxy) -> str | None:
    if not message.args or not isinstance(message.args[0], str):
        return None
    try:
        envelope = json.loads(message.args[0])
    except ValueError:
        return None
    value = envelope.get("correlation_id") if isinstance(envelope, dict) else None
    return value if isinstance(value, str) else None


def map_failure_watch(bridge: SideRuntime) -> MapFailureWatch:
    """The watch for a runtime's bridge: each carrier's queue names its map."""
    maps = {
        consumer.endpoint.queue.name: consumer.endpoint.queue.table_map
        for consumer in bridge.consumers
        if consumer.endpoint.queue.table_map is not None
    }
    return MapFailureWatch(bridge.database, maps)
