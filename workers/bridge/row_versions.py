"""Echo and conflicts on two-way table maps, as the bridge decides them.

The bridge carries both directions of a two-way map and decides each row under a lock of its own
(its row in ``two_way_rows``), so it sees every change of a row in one order. For each row it keeps the
version it carried last (``two_way_rows``: map, integration key, version) and decides with
:func:`contracts.row_versions.decide_at_bridge`:

- a newer version is carried on, and becomes the row's version;
- the version the bridge carried *to* a side, sent back by that side, is an echo: dropped, and
  logged in the map's activity log (kind ``echo``);
- two changes made from the same version on both sides are a conflict: the master's wins. When it
  comes second it is carried on over the other (its loser had been carried already); when it came
  first the other is dropped. Either way one ``conflict`` line names both versions and the loser;
- a repeat of what was carried from the same side (an initial sync's copy of a row carried live
  already), or an older change of the same side arriving late, is dropped (``repeat``, ``stale``).

The rows' own version (``row_version``, ``row_origin``) is the only notion of version a two-way
map has: live changes and an initial sync's copies are decided by it alike (the time stamps of
``map_row_versions`` serve one-way maps only), and a synced row is recorded in its run as carried or
superseded here. A synced copy older than a change carried already is ``stale`` (a copy is not a
change, so it is never a conflict's loser), as is one without a version (a row older than versions)
arriving after the row's first versioned change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, select

from contracts.envelope import Envelope, Side
from contracts.maps import MapDeclaration
from contracts.row_versions import BridgeOutcome, RowVersion, decide_at_bridge, loser
from shared.database import insert_ignoring_duplicates, upsert
from shared.logging import get_logger
from workers.bridge import initial_sync
from workers.bridge.activity import ActivityKind, record_activity
from workers.bridge.tables import metadata

log = get_logger(__name__)

#: The version of each row of a two-way map the bridge carried last (created by ``0005_row_versions``).
two_way_rows = Table(
    "two_way_rows",
    metadata,
    Column("map", String(64), primary_key=True),
    #: The integration key's values as a JSON list of text, e.g. ``["DEMF","P-1"]``.
    Column("key", String(400), primary_key=True),
    Column("row_version", Integer, nullable=False),
    Column("row_origin", String(16), nullable=False),
    #: The message that carried it, and when.
    Column("message_id", String(36), nullable=False),
    Column("carried_at", DateTime(timezone=True), nullable=False),
)

#: Repeats and stale rows of one message are logged as one line naming this many keys at most.
KEYS_LOGGED = 10


def key_text(declaration: MapDeclaration, row: Mapping[str, Any], legal_entity: str | None, *, backwards: bool) -> str:
    """The row's integration key, read in the names the row has after mapping."""
    names = {f.source: (f.source if backwards else f.target) for f in declaration.fields}
    values = [legal_entity if name == "legal_entity" else row.get(names[name]) for name in declaration.key]
    return json.dumps([str(value) for value in values], separators=(",", ":"))


def carried_versions(
    connection: Connection, declaration: MapDeclaration, keys: Sequence[str], envelope: Envelope
) -> dict[str, RowVersion]:
    """The version carried last for each key, each key's row locked until the transaction ends.

    Carriers of one map run side by side (they share the map's row lock), so two messages for the
    same key must decide one after the other: a key seen for the first time gets an unversioned
    row first (an insert that waits for a concurrent one of the same key), then every key's row is
    read ``FOR UPDATE`` in key order (SQLite's writers are serialised already).
    """
    table = two_way_rows
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    now = datetime.now(UTC)
    unversioned = RowVersion(0, declaration.master).as_fields()
    insert_ignoring_duplicates(
        connection,
        table,
        [{"map": declaration.name, "key": key, **unversioned, "message_id": str(envelope.message_id), "carried_at": now}
         for key in wanted],
    )
    query = (
        select(table.c.key, table.c.row_version, table.c.row_origin)
        .where(table.c.map == declaration.name, table.c.key.in_(wanted))
        .order_by(table.c.key)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return {row.key: RowVersion.of(row) for row in connection.execute(query)}


def _remember(connection: Connection, map_name: str, carried: dict[str, RowVersion], envelope: Envelope) -> None:
    now = datetime.now(UTC)
    rows = [
        {"map": map_name, "key": key, **version.as_fields(), "message_id": str(envelope.message_id), "carried_at": now}
        for key, version in sorted(carried.items())
    ]
    upsert(connection, two_way_rows, rows, key=("map", "key"))


def screen_rows(
    connection: Connection,
    declaration: MapDeclaration,
    envelope: Envelope,
    rows: Sequence[dict[str, Any]],
    *,
    backwards: bool,
) -> list[dict[str, Any]]:
    """The rows of one message (mapped already) that the bridge carries on; the rest are logged.

    Each key's row in ``two_way_rows`` is locked while the message is decided, so two messages
    for one row (one from each side) are decided one after the other.
    """
    sent_by = declaration.target if backwards else declaration.source
    keys = [key_text(declaration, row, envelope.legal_entity, backwards=backwards) for row in rows]
    carried = carried_versions(connection, declaration, keys, envelope)
    run_id = initial_sync.run_of(envelope)
    kept, kept_keys, advanced, quiet = [], set(), {}, {}
    for row, key in zip(rows, keys, strict=True):
        incoming = RowVersion.of(row)
        held = advanced.get(key, carried.get(key))
        outcome = decide_at_bridge(held, incoming, sent_by, declaration.master)
        if run_id is not None and _superseded_copy(outcome, held):
            outcome = BridgeOutcome.STALE
        if outcome.carries:
            kept.append(row)
            kept_keys.add(key)
            if not incoming.unversioned:
                advanced[key] = incoming
        if outcome is BridgeOutcome.ECHO:
            _log_echo(connection, declaration, envelope, key, incoming, sent_by)
        elif outcome.is_conflict:
            assert held is not None
            _log_conflict(connection, declaration, envelope, key, outcome, held, incoming)
        elif outcome in (BridgeOutcome.REPEAT, BridgeOutcome.STALE):
            quiet.setdefault(outcome, []).append(key)
    for outcome, dropped in quiet.items():
        _log_dropped(connection, declaration, envelope, outcome, dropped, sent_by)
    _remember(connection, declaration.name, advanced, envelope)
    if run_id is not None:  # an initial sync's page: each row carried, or superseded by a live change
        initial_sync.record_synced_rows(connection, run_id, keys, kept_keys)
    return kept


def _superseded_copy(outcome: BridgeOutcome, held: RowVersion | None) -> bool:
    """Whether an initial sync's copy of a row is older than a change carried already.

    A copy is not a change, so it never loses a conflict: one read before the other side's change
    reached the master is older than it (stale, like a copy without a version read before the
    row's first versioned change). The side would not apply either; the bridge drops them.
    """
    if outcome is BridgeOutcome.CONFLICT_LOST:
        return True
    return outcome is BridgeOutcome.UNVERSIONED and held is not None and not held.unversioned


def _common(envelope: Envelope) -> dict[str, Any]:
    return {"message_id": str(envelope.message_id), "correlation_id": envelope.correlation_id}


def _log_echo(
    connection: Connection, declaration: MapDeclaration, envelope: Envelope, key: str, version: RowVersion, sent_by: Side
) -> None:
    record_activity(
        connection,
        declaration.name,
        ActivityKind.ECHO,
        key=key,
        detail={
            "version": version.counter,
            "origin": version.origin.value,
            "sent_by": sent_by.value,
            "dropped": f"{sent_by.value} sent back version {version} that the bridge had carried to it",
        },
        **_common(envelope),
    )
    log.info("echo dropped", map=declaration.name, key=key, version=str(version), sent_by=sent_by.value)


def _log_conflict(
    connection: Connection,
    declaration: MapDeclaration,
    envelope: Envelope,
    key: str,
    outcome: BridgeOutcome,
    carried: RowVersion,
    incoming: RowVersion,
) -> None:
    lost = loser(outcome, carried, incoming)
    won = incoming if lost is carried else carried
    record_activity(
        connection,
        declaration.name,
        ActivityKind.CONFLICT,
        key=key,
        detail={
            "lost": lost.origin.value,
            "winner": {"version": won.counter, "origin": won.origin.value},
            "loser": {"version": lost.counter, "origin": lost.origin.value},
            # Conflict won: the master's change arrived second and is carried over the loser;
            # conflict lost: the incoming change is dropped, the winner was carried already.
            "carried": outcome is BridgeOutcome.CONFLICT_WON,
            "master": declaration.master.value,
        },
        **_common(envelope),
    )
    log.warning(
        "conflict decided for the master", map=declaration.name, key=key, winner=str(won), loser=str(lost)
    )


def _log_dropped(
    connection: Connection,
    declaration: MapDeclaration,
    envelope: Envelope,
    outcome: BridgeOutcome,
    keys: list[str],
    sent_by: Side,
) -> None:
    shown = keys[:KEYS_LOGGED] + ([f"... {len(keys) - KEYS_LOGGED} more"] if len(keys) > KEYS_LOGGED else [])
    why = {
        BridgeOutcome.REPEAT: f"carried from {sent_by.value} already at this version",
        BridgeOutcome.STALE: f"older than a change of {sent_by.value} carried already",
    }[outcome]
    record_activity(
        connection,
        declaration.name,
        outcome.value,
        key=shown,
        detail={"rows": len(keys), "sent_by": sent_by.value, "dropped": why},
        **_common(envelope),
    )
