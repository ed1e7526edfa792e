"""Two-way table maps: the version of each row the bridge carried last (two_way_rows).

Revision ID: 0005_row_versions
Revises: 0004_initial_sync
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_row_versions'
down_revision = '0004_initial_sync'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('two_way_rows',
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('row_version', sa.Integer(), nullable=False),
    sa.Column('row_origin', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('carried_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('map', 'key')
    )


def downgrade() -> None:
    op.drop_table('two_way_rows')
