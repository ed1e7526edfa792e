"""Counts each failure of a table map and applies the map's alert rules: the messages it dead-letters
at the bridge (``MapFailureWatch``) and those the target side dead-lettered, which that side reports
on ``bridge.map-failures`` (``record_target_failures``)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import dramatiq
from dramatiq.middleware import Middleware

from contracts.map_failures import MapFailuresV1
from contracts.maps import map_declaration
from contracts.registry import Decoded
from shared.errors import Refused
from shared.logging import get_logger
from shared.unit_of_work import UnitOfWork
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
        if exception is None or not message.failed or isinstance(exception, Refused):
            return  # a refused stranger is not the map's failure: it must not be able to pause the map
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
    except (ValueError, RecursionError):
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


#: Correlation ids of an initial sync's batches (``workers/initial_sync_export.py``).
INITIAL_SYNC_CORRELATION = "initial-sync:"


def record_target_failures(message: Decoded[MapFailuresV1], uow: UnitOfWork) -> None:
    """A side refused messages the bridge carried to it: each is a failure of its map, with side, keys and reason.

    A report that a side applied such a message once replayed is logged as ``replayed`` (the failure
    stays counted: it happened).

    Counted toward the map's alert rules like a failure at the bridge, except a batch of an initial
    sync, logged as ``initial-sync`` (so a sync of old data does not pause the map half-way, as for
    the rows the master itself refuses).
    """
    for row in message.payload.rows:
        try:
            map_declaration(row.table_map)
        except KeyError:
            log.warning("failure reported for an unknown table map", map=row.table_map, message_id=row.message_id)
            continue
        reason = f"{row.error_type}: {row.error}"
        if row.outcome == "applied_on_replay":
            lock_state(uow.connection, row.table_map, shared=True)
            record_activity(
                uow.connection, row.table_map, ActivityKind.REPLAYED, message_id=row.message_id,
                correlation_id=row.correlation_id, key=row.keys,
                detail={"applied_by": row.side, "had_failed": reason, "queue": row.queue, "carried": row.causation_id},
            )
            log.info("table map message applied on replay", map=row.table_map, side=row.side, message_id=row.message_id)
            continue
        # The message id is the refused one (what `dualwrite dlq` names it by); its cause, the one the bridge received.
        detail = {
            "refused_by": row.side, "error": reason, "queue": row.queue, "carried": row.causation_id,
            "dead_at": row.dead_at.isoformat(),
        }
        if (row.correlation_id or "").startswith(INITIAL_SYNC_CORRELATION):
            lock_state(uow.connection, row.table_map, shared=True)
            record_activity(
                uow.connection, row.table_map, ActivityKind.INITIAL_SYNC, message_id=row.message_id,
                correlation_id=row.correlation_id, key=row.keys, detail=detail,
            )
            continue
        fired = record_failure(
            uow.connection, row.table_map, f"refused by {row.side}: {reason}",
            message_id=row.message_id, correlation_id=row.correlation_id, key=row.keys, detail=detail,
        )
        log.warning("table map message refused by its target side", map=row.table_map, side=row.side,
                    message_id=row.message_id, error=reason)
        if fired is not None:
            log.warning("alert rule fired", map=row.table_map, rule=fired.describe(), action=fired.action)
