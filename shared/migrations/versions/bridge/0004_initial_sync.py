"""Initial sync of table maps: runs, their pages, refused rows, rows carried, and row versions.

Revision ID: 0004_initial_sync
Revises: 0003_table_maps
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_initial_sync'
down_revision = '0003_table_maps'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('initial_sync_runs',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('master', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('page_size', sa.Integer(), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resumes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('run_id')
    )
    op.create_index('ix_initial_sync_runs_map_started', 'initial_sync_runs', ['map', 'started_at'], unique=False)
    op.create_table('initial_sync_pages',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('page', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('after_key', sa.Text(), nullable=True),
    sa.Column('last_key', sa.Text(), nullable=True),
    sa.Column('rows_read', sa.Integer(), nullable=False),
    sa.Column('rows_sent', sa.Integer(), nullable=False),
    sa.Column('rows_failed', sa.Integer(), nullable=False),
    sa.Column('finished', sa.Boolean(), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'page')
    )
    op.create_table('initial_sync_failures',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('page', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_table('initial_sync_rows',
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'key')
    )
    op.create_table('map_row_versions',
    sa.Column('map', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('version', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('map', 'key')
    )


def downgrade() -> None:
    op.drop_table('map_row_versions')
    op.drop_table('initial_sync_rows')
    op.drop_table('initial_sync_failures')
    op.drop_table('initial_sync_pages')
    op.drop_index('ix_initial_sync_runs_map_started', table_name='initial_sync_runs')
    op.drop_table('initial_sync_runs')
