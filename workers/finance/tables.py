"""The finance database: its business tables and its inbox, outbox and dead letters."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, MetaData, String, Table

from shared.messaging_tables import messaging_tables

metadata = MetaData()
messaging = messaging_tables(metadata)

shared_categories = Table(
    "shared_categories",
    metadata,
    Column("category", String(30), primary_key=True),
    Column("transaction_class", String(16), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("description", String(500)),
    Column("can_be_used_in_expense", Boolean, nullable=False, default=False),
    Column("expense_type", String(32)),
)

expense_categories = Table(
    "expense_categories",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("expense_category", String(30), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("shared_category", String(30), nullable=False),
    Column("expense_type", String(32), nullable=False),
)
