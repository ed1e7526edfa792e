"""The bridge database: so far only its inbox, outbox and dead letters."""

from __future__ import annotations

from sqlalchemy import MetaData

from shared.messaging_tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)
