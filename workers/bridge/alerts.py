"""Alert rules: a map that fails too often in a window is paused (or stopped), and says why.

What counts as a failure of a map: a message of the map's outbound queue that is dead-lettered at
the bridge (a contract the bridge cannot read, rows the declaration cannot map, a version that is
not active, a database error that outlived its retries), a held message that cannot be applied on
release, and a message the bridge carried that the target side dead-lettered (its handler refused
it), which that side reports back on ``bridge.map-failures`` (``workers/bridge/map_failures.py``).
Refusals of a stopped or not-running map are logged as ``refused`` and do not count: the operator
chose them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from contracts.maps import AlertRule, map_declaration
from workers.bridge.activity import ActivityKind, count_since, record_activity
from workers.bridge.map_states import MapState, MapStatus, audit_entry, change_state, count_failed, lock_state

#: Who the activity and audit logs name when an alert rule changes a map's state.
ALERT_OPERATOR = "alert"


def record_failure(
    connection: Connection,
    map_name: str,
    error: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    key: Sequence[str] | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AlertRule | None:
    """Count and log one failure of the map, then apply its alert rules; the rule that fired, if any.

    ``error`` is what ``maps list`` shows as the last error; ``detail`` (default: ``error``) is logged.
    """
    at = at or datetime.now(UTC)
    status = lock_state(connection, map_name)
    count_failed(connection, map_name, error, at)
    record_activity(
        connection, map_name, ActivityKind.FAILED, message_id=message_id, correlation_id=correlation_id,
        key=key, detail=detail if detail is not None else error, at=at,
    )
    return apply_alert_rules(connection, status, at, error)


def apply_alert_rules(connection: Connection, status: MapStatus, at: datetime, last_error: str) -> AlertRule | None:
    if status.state not in (MapState.RUNNING, MapState.INITIALIZING):
        return None  # already paused or stopped: nothing more an alert could do
    for rule in map_declaration(status.map).alerts:
        failures = count_since(connection, status.map, ActivityKind.FAILED, at - timedelta(minutes=rule.within_minutes))
        if failures >= rule.failures:
            _fire(connection, status, rule, failures, last_error, at)
            return rule
    return None


def _fire(connection: Connection, status: MapStatus, rule: AlertRule, failures: int, last_error: str, at: datetime) -> None:
    state = MapState.PAUSED if rule.action == "pause" else MapState.STOPPED
    reason = f"alert: {failures} failures within {rule.within_minutes:g} minutes (rule: {rule.describe()}); last: {last_error}"
    reason = reason[:1000]
    record_activity(connection, status.map, ActivityKind.ALERT, detail={"rule": rule.describe(), "failures": failures, "action": rule.action}, at=at)
    change_state(connection, status.map, state, reason=reason, by=ALERT_OPERATOR)
    audit_entry(
        connection, ALERT_OPERATOR, f"map-{rule.action}", status.map, failures,
        {"rule": rule.describe(), "reason": reason, "from": status.state.value}, at=at,
    )
