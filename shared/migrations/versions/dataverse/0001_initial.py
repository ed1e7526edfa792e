"""The dataverse schema as it was when migrations began: business tables, inbox, outbox, dead letters.

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
    op.create_table('actuals',
    sa.Column('actual_id', sa.String(length=60), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_id', sa.String(length=60), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('transaction_classification', sa.Integer(), nullable=False),
    sa.Column('transaction_type', sa.Integer(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('accounting_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('exchange_rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=False),
    sa.Column('skip_sync', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=True),
    sa.Column('posted_on', sa.Date(), nullable=True),
    sa.Column('posting_status', sa.String(length=16), server_default='unposted', nullable=False),
    sa.PrimaryKeyConstraint('actual_id')
    )
    op.create_index(op.f('ix_actuals_expense_id'), 'actuals', ['expense_id'], unique=False)
    op.create_index(op.f('ix_actuals_legal_entity'), 'actuals', ['legal_entity'], unique=False)
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
    op.create_table('expense_categories',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('transaction_category', sa.String(length=30), nullable=False),
    sa.Column('expense_type', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'expense_category')
    )
    op.create_table('expense_estimates',
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('line_number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('quantity', shared.sql_types.FixedPoint(scale=4, precision=18), nullable=False),
    sa.Column('unit_cost', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('project_id', 'line_number')
    )
    op.create_table('expenses',
    sa.Column('expense_id', sa.String(length=60), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('report_id', sa.String(length=30), nullable=False),
    sa.Column('line_number', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('project_cost', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('project_cost_accounting', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('exchange_rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=False),
    sa.Column('approval_status', sa.String(length=16), server_default='pending', nullable=False),
    sa.PrimaryKeyConstraint('expense_id')
    )
    op.create_index(op.f('ix_expenses_legal_entity'), 'expenses', ['legal_entity'], unique=False)
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
    op.create_table('projects',
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('project_manager', sa.String(length=64), nullable=False),
    sa.Column('billable', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=8), server_default='active', nullable=False),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_index(op.f('ix_projects_legal_entity'), 'projects', ['legal_entity'], unique=False)
    op.create_table('system_jobs',
    sa.Column('job_id', sa.String(length=60), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_id', sa.String(length=60), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('claimed_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('job_id'),
    sa.UniqueConstraint('expense_id')
    )
    op.create_index('ix_system_jobs_status', 'system_jobs', ['status', 'created_at'], unique=False)
    op.create_table('transaction_categories',
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('category')
    )


def downgrade() -> None:
    op.drop_table('transaction_categories')
    op.drop_index('ix_system_jobs_status', table_name='system_jobs')
    op.drop_table('system_jobs')
    op.drop_index(op.f('ix_projects_legal_entity'), table_name='projects')
    op.drop_table('projects')
    op.drop_index('ix_outbox_unsent', table_name='outbox')
    op.drop_index(op.f('ix_outbox_correlation_id'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_causation_id'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_index(op.f('ix_inbox_correlation_id'), table_name='inbox')
    op.drop_table('inbox')
    op.drop_index(op.f('ix_expenses_legal_entity'), table_name='expenses')
    op.drop_table('expenses')
    op.drop_table('expense_estimates')
    op.drop_table('expense_categories')
    op.drop_index(op.f('ix_dead_letters_message_id'), table_name='dead_letters')
    op.drop_table('dead_letters')
    op.drop_index(op.f('ix_actuals_legal_entity'), table_name='actuals')
    op.drop_index(op.f('ix_actuals_expense_id'), table_name='actuals')
    op.drop_table('actuals')
