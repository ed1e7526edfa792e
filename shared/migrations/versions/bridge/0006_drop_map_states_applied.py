"""map_states.applied dropped: nothing writes it since carriers count from the activity log.

Since d068ca1 a map's applied count is the number of its ``applied`` and ``released`` lines in
``map_activity`` (``maps list``); the column was only added to that. Every message it counted
before then was logged in ``map_activity`` as well, so dropping it loses no count (it counted
those messages a second time). The downgrade brings the column back at 0.

Revision ID: 0006_drop_map_states_applied
Revises: 0005_row_versions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_drop_map_states_applied'
down_revision = '0005_row_versions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('map_states') as batch_op:
        batch_op.drop_column('applied')


def downgrade() -> None:
    with op.batch_alter_table('map_states') as batch_op:
        batch_op.add_column(sa.Column('applied', sa.Integer(), nullable=False, server_default='0'))
