"""The bridge database: its inbox, outbox and dead letters, and the operators' audit log."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text

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
