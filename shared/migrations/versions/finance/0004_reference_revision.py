"""The reference data's revision: one row whose token every `dualwrite setup` changes.

Workers keep the company set-ups and exchange rates they read while the token stays the same. A
database upgraded from 0003 has no row yet: workers then read the reference data afresh for every
message until the next `dualwrite setup` writes one.

Revision ID: 0004_reference_revision
Revises: 0003_row_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_reference_revision'
down_revision = '0003_row_versions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reference_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("reference_revision")
