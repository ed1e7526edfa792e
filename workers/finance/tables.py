"""The finance database: its business tables and its inbox, outbox and dead letters."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, DateTime, Index, Integer, MetaData, String, Table, UniqueConstraint

from shared.case_variants import unique_in_any_case
from shared.messaging_tables import messaging_tables
from shared.sql_types import FixedPoint, Money

metadata = MetaData()
messaging = messaging_tables(metadata)

Rate = FixedPoint(scale=8)
Share = FixedPoint(scale=6)

# -- categories ----------------------------------------------------------------------------------

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

#: No code beside one differing only in case (shared/case_variants.py): per transaction class, per company.
unique_in_any_case(shared_categories.c.category, shared_categories.c.transaction_class)
unique_in_any_case(expense_categories.c.expense_category, expense_categories.c.legal_entity)

# -- reference data (dualwrite setup) ------------------------------------------------------------

legal_entities = Table(
    "legal_entities",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("expense_integration_account", String(20), nullable=False),
    Column("project_cost_account", String(20), nullable=False),
    Column("employee_payables_account", String(20), nullable=False),
    Column("ordinary_expense_account", String(20), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("account", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
)

category_accounts = Table(
    "category_accounts",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("expense_category", String(30), primary_key=True),
    Column("project_cost_account", String(20)),
    Column("expense_account", String(20)),
)

tax_codes = Table(
    "tax_codes",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("tax_code", String(30), primary_key=True),
    Column("rate", Share, nullable=False),
    Column("recoverable_share", Share, nullable=False),
    Column("tax_account", String(20), nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("vendor_account", String(20), nullable=False),
    Column("manager", String(64), nullable=False),
)

exchange_rates = Table(
    "exchange_rates",
    metadata,
    Column("from_currency", String(3), primary_key=True),
    Column("to_currency", String(3), primary_key=True),
    Column("valid_from", Date, primary_key=True),
    Column("rate", Rate, nullable=False),
)

#: One row, rewritten by every `dualwrite setup`: a token naming this version of the reference data
#: (legal entities, tax codes, workers, category accounts, exchange rates), so a worker can keep what
#: it read until the token changes (workers/finance/store/reference.py).
reference_revision = Table(
    "reference_revision",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("token", String(32), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("project_id", String(30), primary_key=True),
    Column("legal_entity", String(8), nullable=False),
    Column("name", String(100), nullable=False),
    Column("project_manager", String(64), nullable=False),
    Column("billable", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    #: The row's version (contracts/row_versions.py): msdyn_projects is two-way, Dataverse masters it.
    Column("row_version", Integer, nullable=False, default=0, server_default="0"),
    Column("row_origin", String(16), nullable=False, default="dataverse", server_default="dataverse"),
)

unique_in_any_case(projects.c.project_id)

# -- expense reports -----------------------------------------------------------------------------

expense_reports = Table(
    "expense_reports",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("report_id", String(30), primary_key=True),
    Column("worker", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("voucher", String(60)),
    Column("posted_on", Date),
)

#: Report ids are unique per company; the lowered id leads, so a look-up across companies uses it too.
unique_in_any_case(expense_reports.c.report_id, expense_reports.c.legal_entity)

expense_lines = Table(
    "expense_lines",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("report_id", String(30), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("project_id", String(30)),
    Column("expense_category", String(30), nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("tax_code", String(30)),
    Column("description", String(500)),
    Column("approved_by", String(64)),
    # Filled in at posting:
    Column("exchange_rate", Rate),
    Column("tax_amount", Money),
    Column("recoverable_tax", Money),
    Column("project_cost", Money),
    Column("amount_accounting", Money),
    Column("recoverable_tax_accounting", Money),
    Column("project_cost_accounting", Money),
)

# -- general ledger and subledgers ---------------------------------------------------------------

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("voucher", String(60), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("account", String(20), nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("date", Date, nullable=False),
    Column("transaction_amount", Money, nullable=False),
    Column("transaction_currency", String(3), nullable=False),
    Column("project_id", String(30)),
    Column("expense_category", String(30)),
    Column("source", String(32), nullable=False),
    Column("source_id", String(80), nullable=False),
    Index("ix_ledger_account", "legal_entity", "account"),
)

tax_transactions = Table(
    "tax_transactions",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("voucher", String(60), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("report_id", String(30), nullable=False),
    Column("tax_code", String(30), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("base_amount", Money, nullable=False),
    Column("tax_amount", Money, nullable=False),
    Column("recoverable_amount", Money, nullable=False),
    Column("non_recoverable_amount", Money, nullable=False),
    Column("recoverable_accounting", Money, nullable=False),
    Column("date", Date, nullable=False),
)

vendor_transactions = Table(
    "vendor_transactions",
    metadata,
    Column("legal_entity", String(8), primary_key=True),
    Column("voucher", String(60), primary_key=True),
    Column("vendor_account", String(20), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("report_id", String(30), nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
)

# -- Project Operations integration --------------------------------------------------------------

actuals_staging = Table(
    "actuals_staging",
    metadata,
    Column("actual_id", String(60), primary_key=True),
    Column("legal_entity", String(8), nullable=False),
    Column("expense_id", String(60), nullable=False),
    Column("project_id", String(30), nullable=False),
    Column("expense_category", String(30), nullable=False),
    Column("transaction_type", Integer, nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("accounting_amount", Money, nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("exchange_rate", Rate, nullable=False),
    Column("status", String(16), nullable=False),  # staged | imported
    Column("journal_id", String(40)),
    Column("staged_at", DateTime(timezone=True), nullable=False),
    Index("ix_staging_status", "status", "legal_entity"),
)

integration_journals = Table(
    "integration_journals",
    metadata,
    Column("journal_id", String(40), primary_key=True),
    Column("legal_entity", String(8), nullable=False),
    Column("period", String(10), nullable=False),
    Column("status", String(16), nullable=False),  # open | posted
    Column("line_count", Integer, nullable=False),
    Column("voucher", String(60)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True)),
    Index("ix_journal_status", "status"),
)

integration_journal_lines = Table(
    "integration_journal_lines",
    metadata,
    Column("journal_id", String(40), primary_key=True),
    Column("line_number", Integer, primary_key=True, autoincrement=False),
    Column("actual_id", String(60), nullable=False, unique=True),
    Column("legal_entity", String(8), nullable=False),
    Column("expense_id", String(60), nullable=False),
    Column("project_id", String(30), nullable=False),
    Column("expense_category", String(30), nullable=False),
    Column("transaction_type", Integer, nullable=False),
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("accounting_amount", Money, nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("exchange_rate", Rate, nullable=False),
    Column("account", String(20)),
    Column("offset_account", String(20), nullable=False),
)

project_transactions = Table(
    "project_transactions",
    metadata,
    Column("legal_entity", String(8), nullable=False),
    Column("actual_id", String(60), primary_key=True),
    Column("project_id", String(30), nullable=False),
    Column("expense_category", String(30), nullable=False),
    Column("kind", String(20), nullable=False),  # cost | unbilled_revenue
    Column("date", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("accounting_amount", Money, nullable=False),
    Column("accounting_currency", String(3), nullable=False),
    Column("voucher", String(60), nullable=False),
    Column("journal_id", String(40), nullable=False),
    UniqueConstraint("actual_id", "kind"),
)
