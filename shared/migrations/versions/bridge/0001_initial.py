"""The bridge schema as it was when migrations began: inbox, outbox, dead letters.

Revision ID: 0001_initial
Revises: None
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import shared.sql_types

revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('queue_name', sa.String(length=128), nullable=False),
    sa.Column('actor_name', sa.String(length=128), nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('error_kind', sa.String(length=16), nullable=False),
    sa.Column('error_type', sa.String(length=128), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_dead_letters_message_id'), 'dead_letters', ['message_id'], unique=False)
    op.create_table('inbox',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('queue_name', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=True),
    sa.Column('correlation_id', sa.String(length=200), nullable=False),
    sa.Column('causation_id', sa.String(length=200), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index(op.f('ix_inbox_correlation_id'), 'inbox', ['correlation_id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('queue_name', sa.String(length=128), nullable=False),
    sa.Column('actor_name', sa.String(length=128), nullable=False),
    sa.Column('contract', sa.String(length=64), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=False),
    sa.Column('causation_id', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    op.create_index(op.f('ix_outbox_causation_id'), 'outbox', ['causation_id'], unique=False)
    op.create_index(op.f('ix_outbox_correlation_id'), 'outbox', ['correlation_id'], unique=False)
    op.create_index('ix_outbox_unsent', 'outbox', ['sent_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_unsent', table_name='outbox')
    op.drop_index(op.f('ix_outbox_correlation_id'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_causation_id'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index(op.f('ix_inbox_correlation_id'), table_name='inbox')
    op.drop_table('inbox')
    op.drop_index(op.f('ix_dead_letters_message_id'), table_name='dead_letters')
    op.drop_table('dead_letters')
