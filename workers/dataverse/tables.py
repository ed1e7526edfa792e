"""The Dataverse database: its business tables and its inbox, outbox and dead letters."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, Integer, MetaData, String, Table

from shared.messaging_tables import messaging_tables
from shared.sql_types import FixedPoint, Money

metadata = MetaData()
messaging = messaging_tables(metadata)

transaction_categories = Table(
    "transaction_categories",
    metadata,
    Column("category", String(30), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("description", String(500)),
)

expense_categories = Table(
    "expense_categories",
    metadata,
    # Legal-entity-specific: the same code in two companies is two records.
    Column("legal_entity", String(8), primary_key=True),
    Column("expense_category", String(30), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("transaction_category", String(30), nullable=False),
    Column("expense_type", String(32), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("project_id", String(30), primary_key=True),
    Column("legal_entity", String(8), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("project_manager", String(64), nullable=False),
    Column("billable", Boolean, nullable=False),
)

expense_estimates = Table(
    "expense_estimates",
    metadata,
    Column("project_id", String(30), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("legal_entity", String(8), nullable=False),
    Column("expense_category", String(30), nullable=False),
    Column("date", Date, nullable=False),
    Column("quantity", FixedPoint(scale=4), nullable=False),
    Column("unit_cost", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
)
