"""Unique indexes on lower(id): no transaction creates an id beside one differing only in case.

The handlers' check (shared/case_variants.py) reads what is committed; two transactions could each
pass it. These indexes refuse the second, and serve the check's look-ups (the lowered id leads, so
finding a report in any company uses it too). Shared categories are unique per transaction class,
expense categories and reports per company, projects across companies. An upgrade stops, changing
nothing, on a database holding such ids (shared/migrations/ids_in_any_case.py).

Revision ID: 0007_ids_in_any_case
Revises: 0006_dead_letter_copy_digest
"""

from __future__ import annotations

from shared.migrations.ids_in_any_case import create_unique_index_in_any_case, drop_unique_index_in_any_case

revision = '0007_ids_in_any_case'
down_revision = '0006_dead_letter_copy_digest'
branch_labels = None
depends_on = None

INDEXES = (
    ("shared_categories", "category", "transaction_class"),
    ("expense_categories", "expense_category", "legal_entity"),
    ("projects", "project_id"),
    ("expense_reports", "report_id", "legal_entity"),
)


def upgrade() -> None:
    for table, id_column, *scope in INDEXES:
        create_unique_index_in_any_case(table, id_column, *scope)


def downgrade() -> None:
    for table, id_column, *_ in reversed(INDEXES):
        drop_unique_index_in_any_case(table, id_column)
