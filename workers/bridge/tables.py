"""The bridge database: its inbox, outbox and dead letters, the operators' audit log, and the
state, held messages and activity log of each table map."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text

from shared.messaging_tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

#: Every repair an operator makes (dead letters replayed, edited or purged; maps paused or resumed):
#: who, when, what and how many. The bridge keeps it, as the integration's own record.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("operator", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    #: What it was applied to, as typed: a message id, ``group 3f2a91c0``, ``all``, a table map.
    Column("target", String(200), nullable=False),
    Column("count", Integer, nullable=False),
    #: JSON: the message ids concerned, refusals, the edited file... whatever the action reports.
    Column("details", Text),
)

#: One row per table map: its state (see ``workers.bridge.map_states``), the version it runs, what it
#: failed, and why it is in its state. A map without a row is running its declared version. What it
#: applied is counted from the activity log (``maps list``): an update of this row per message would
#: serialize the map's carriers.
map_states = Table(
    "map_states",
    metadata,
    Column("map", String(64), primary_key=True),
    #: not_running, initializing, running, paused or stopped.
    Column("state", String(16), nullable=False),
    Column("active_version", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("last_error", Text),
    Column("last_error_at", DateTime(timezone=True)),
    #: Why the map is in its state: an operator's words, or the alert rule that paused it.
    Column("reason", Text),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(128), nullable=False),
)

#: Messages of a paused map (and of a resumed one until its hold is empty), as received, released
#: in the order their source published them. No time or size limit but the database's.
held_messages = Table(
    "held_messages",
    metadata,
    #: Arrival order at the bridge; breaks ties between messages published at the same instant.
    Column("sequence", Integer, primary_key=True, autoincrement=True),
    Column("map", String(64), nullable=False),
    Column("message_id", String(36), nullable=False, unique=True),
    Column("contract", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("correlation_id", String(200), nullable=False),
    #: The envelope's ``occurred_at``: when the source side published the message.
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("enqueued_at", DateTime(timezone=True)),
    Column("held_at", DateTime(timezone=True), nullable=False),
    Index("ix_held_messages_release_order", "map", "published_at", "sequence"),
)

#: What each map did, message by message: applied, failed, held, released, state, alert,
#: conflict, echo, initial-sync... (``workers.bridge.activity``).
map_activity = Table(
    "map_activity",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("map", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("message_id", String(36)),
    Column("correlation_id", String(200)),
    #: The integration key(s) concerned, as text (``legal_entity=DEMF, project_id=P1``).
    Column("key", Text),
    Column("detail", Text),
    Index("ix_map_activity_map_id", "map", "id"),
    Index("ix_map_activity_map_kind_at", "map", "kind", "at"),
)
