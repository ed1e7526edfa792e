"""The inbox keeps the SHA-256 of what each message asked for (contract, version, source, company, payload).

A message id applied before that arrives again asking for something else is then refused as a
conflicting duplicate instead of being dropped as a redelivery. Rows applied before this revision have no
digest: a later copy of one of them is taken as a redelivery, as before.

Revision ID: 0008_inbox_digest
Revises: 0007_two_way_versions_only
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_inbox_digest'
down_revision = '0007_two_way_versions_only'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("digest")
