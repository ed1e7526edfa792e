"""Unique indexes on lower(id): no transaction creates an id beside one differing only in case.

The handlers' check (shared/case_variants.py) reads what is committed; two transactions could each
pass it. These indexes refuse the second, and serve the check's look-up (the lowered id leads).
Transaction categories and projects are unique across companies, expense categories per company.
An upgrade stops, changing nothing, on a database holding such ids (shared/migrations/ids_in_any_case.py).

Revision ID: 0007_ids_in_any_case
Revises: 0006_legal_entities
"""

from __future__ import annotations

from shared.migrations.ids_in_any_case import create_unique_index_in_any_case, drop_unique_index_in_any_case

revision = '0007_ids_in_any_case'
down_revision = '0006_legal_entities'
branch_labels = None
depends_on = None

INDEXES = (
    ("transaction_categories", "category"),
    ("expense_categories", "expense_category", "legal_entity"),
    ("projects", "project_id"),
)


def upgrade() -> None:
    for table, id_column, *scope in INDEXES:
        create_unique_index_in_any_case(table, id_column, *scope)


def downgrade() -> None:
    for table, id_column, *_ in reversed(INDEXES):
        drop_unique_index_in_any_case(table, id_column)
