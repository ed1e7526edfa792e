"""The Dataverse database: its business tables and its inbox, outbox and dead letters."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text, false

from shared.case_variants import unique_in_any_case
from shared.messaging_tables import messaging_tables
from shared.sql_types import FixedPoint, Money

metadata = MetaData()
messaging = messaging_tables(metadata)

#: Exchange rates keep eight decimals, as the contracts carry them.
Rate = FixedPoint(scale=8)

#: The companies Dataverse serves, loaded by `dualwrite setup` (workers/dataverse/companies.py): a
#: company-scoped message for any other is refused.
legal_entities = Table(
    "legal_entities",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("name", String(100), nullable=False),
)

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
    Column("status", String(8), nullable=False, default="active", server_default="active"),
    #: The row's version (contracts/row_versions.py): msdyn_projects is two-way, Dataverse masters it.
    Column("row_version", Integer, nullable=False, default=0, server_default="0"),
    Column("row_origin", String(16), nullable=False, default="dataverse", server_default="dataverse"),
)

#: No id beside one differing only in case (shared/case_variants.py): expense categories per company.
unique_in_any_case(transaction_categories.c.category)
unique_in_any_case(expense_categories.c.expense_category, expense_categories.c.legal_entity)
unique_in_any_case(projects.c.project_id)

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

expenses = Table(
    "expenses",
    metadata,
    # Written by msdyn_expenses: one record per posted project expense line.
    Column("expense_id", String(60), primary_key=True),
    Column("legal_entity", String(8), nullable=False, index=True),
    Column("report_id", String(30), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("project_id", String(30), nullable=False),
    Column("expense_category", String(30), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("project_cost", Money, nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("project_cost_accounting", Money, nullable=False),
    Column("exchange_rate", Rate, nullable=False),
    Column("voucher", String(60), nullable=False),
    Column("approval_status", String(16), nullable=False, default="pending", server_default="pending"),
)

system_jobs = Table(
    "system_jobs",
    metadata,
    # One automated approval per expense record: the unique expense id makes a redelivery a no-op.
    Column("job_id", String(60), primary_key=True),
    Column("legal_entity", String(8), nullable=False),
    Column("expense_id", String(60), nullable=False, unique=True),
    # The business document the job belongs to, so a retried job's messages join its trace.
    Column("correlation_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("claimed_by", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Index("ix_system_jobs_status", "status", "created_at"),
)

actuals = Table(
    "actuals",
    metadata,
    Column("actual_id", String(60), primary_key=True),
    Column("legal_entity", String(8), nullable=False, index=True),
    Column("expense_id", String(60), nullable=False, index=True),
    Column("project_id", String(30), nullable=False),
    Column("expense_category", String(30), nullable=False),
    # Dataverse option values (contracts.fields.TransactionClassification, TransactionType).
    Column("transaction_classification", Integer, nullable=False),
    Column("transaction_type", Integer, nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("accounting_amount", Money, nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("exchange_rate", Rate, nullable=False),
    Column("skip_sync", Boolean, nullable=False, default=False, server_default=false()),
    # Written back by msdyn_actualpostings once finance posts the integration journal.
    Column("voucher", String(60)),
    Column("posted_on", Date),
    Column("posting_status", String(16), nullable=False, default="unposted", server_default="unposted"),
)
