"""Table maps: each map's state and counts (map_states), the messages a paused map holds
(held_messages) and each map's activity log (map_activity).

Revision ID: 0003_table_maps
Revises: 0002_dead_letter_outcome
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003_table_maps'
down_revision = '0002_dead_letter_outcome'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('map_states',
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('active_version', sa.Integer(), nullable=False),
    sa.Column('applied', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('map')
    )
    op.create_table('held_messages',
    sa.Column('sequence', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('held_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sequence'),
    sa.UniqueConstraint('message_id')
    )
    op.create_index('ix_held_messages_release_order', 'held_messages', ['map', 'published_at', 'sequence'], unique=False)
    op.create_table('map_activity',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=True),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('key', sa.Text(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_map_activity_map_id', 'map_activity', ['map', 'id'], unique=False)
    op.create_index('ix_map_activity_map_kind_at', 'map_activity', ['map', 'kind', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_map_activity_map_kind_at', table_name='map_activity')
    op.drop_index('ix_map_activity_map_id', table_name='map_activity')
    op.drop_table('map_activity')
    op.drop_index('ix_held_messages_release_order', table_name='held_messages')
    op.drop_table('held_messages')
    op.drop_table('map_states')
