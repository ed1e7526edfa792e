"""Projects carry their row version (msdyn_projects is two-way): row_version and row_origin.

Rows already there are unversioned (0), their version is the master's (Dataverse): see
contracts/row_versions.py.

Revision ID: 0003_row_versions
Revises: 0002_dead_letter_outcome
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_row_versions'
down_revision = '0002_dead_letter_outcome'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("row_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("row_origin", sa.String(length=16), nullable=False, server_default="dataverse"))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("row_origin")
        batch.drop_column("row_version")
