"""Dead letters keep what an operator did about them: outcome, resolved_at, resolved_by, replayed_body.

Revision ID: 0002_dead_letter_outcome
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_dead_letter_outcome'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Made by `dualwrite dlq` with ALTER TABLE before migrations; now a revision of its own.
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("replayed_body", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        for column in ("replayed_body", "resolved_by", "resolved_at", "outcome"):
            batch.drop_column(column)
