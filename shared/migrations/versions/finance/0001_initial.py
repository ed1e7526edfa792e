"""The finance schema as it was when migrations began: business tables, inbox, outbox, dead letters.

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
    op.create_table('accounts',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('account', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'account')
    )
    op.create_table('actuals_staging',
    sa.Column('actual_id', sa.String(length=60), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_id', sa.String(length=60), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('transaction_type', sa.Integer(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('accounting_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('exchange_rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('journal_id', sa.String(length=40), nullable=True),
    sa.Column('staged_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('actual_id')
    )
    op.create_index('ix_staging_status', 'actuals_staging', ['status', 'legal_entity'], unique=False)
    op.create_table('category_accounts',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('project_cost_account', sa.String(length=20), nullable=True),
    sa.Column('expense_account', sa.String(length=20), nullable=True),
    sa.PrimaryKeyConstraint('legal_entity', 'expense_category')
    )
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
    op.create_table('exchange_rates',
    sa.Column('from_currency', sa.String(length=3), nullable=False),
    sa.Column('to_currency', sa.String(length=3), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=False),
    sa.PrimaryKeyConstraint('from_currency', 'to_currency', 'valid_from')
    )
    op.create_table('expense_categories',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('shared_category', sa.String(length=30), nullable=False),
    sa.Column('expense_type', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'expense_category')
    )
    op.create_table('expense_lines',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('report_id', sa.String(length=30), nullable=False),
    sa.Column('line_number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=True),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax_code', sa.String(length=30), nullable=True),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('approved_by', sa.String(length=64), nullable=True),
    sa.Column('exchange_rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=True),
    sa.Column('tax_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.Column('recoverable_tax', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.Column('project_cost', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.Column('amount_accounting', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.Column('recoverable_tax_accounting', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.Column('project_cost_accounting', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=True),
    sa.PrimaryKeyConstraint('legal_entity', 'report_id', 'line_number')
    )
    op.create_table('expense_reports',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('report_id', sa.String(length=30), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=True),
    sa.Column('posted_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('legal_entity', 'report_id')
    )
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
    op.create_table('integration_journal_lines',
    sa.Column('journal_id', sa.String(length=40), nullable=False),
    sa.Column('line_number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('actual_id', sa.String(length=60), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('expense_id', sa.String(length=60), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('transaction_type', sa.Integer(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('accounting_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('exchange_rate', shared.sql_types.FixedPoint(scale=8, precision=18), nullable=False),
    sa.Column('account', sa.String(length=20), nullable=True),
    sa.Column('offset_account', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('journal_id', 'line_number'),
    sa.UniqueConstraint('actual_id')
    )
    op.create_table('integration_journals',
    sa.Column('journal_id', sa.String(length=40), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('journal_id')
    )
    op.create_index('ix_journal_status', 'integration_journals', ['status'], unique=False)
    op.create_table('ledger_entries',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=False),
    sa.Column('line_number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('account', sa.String(length=20), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('transaction_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('transaction_currency', sa.String(length=3), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=True),
    sa.Column('expense_category', sa.String(length=30), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'voucher', 'line_number')
    )
    op.create_index('ix_ledger_account', 'ledger_entries', ['legal_entity', 'account'], unique=False)
    op.create_table('legal_entities',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('expense_integration_account', sa.String(length=20), nullable=False),
    sa.Column('project_cost_account', sa.String(length=20), nullable=False),
    sa.Column('employee_payables_account', sa.String(length=20), nullable=False),
    sa.Column('ordinary_expense_account', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity')
    )
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
    op.create_table('project_transactions',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('actual_id', sa.String(length=60), nullable=False),
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('expense_category', sa.String(length=30), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('accounting_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('accounting_currency', sa.String(length=3), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=False),
    sa.Column('journal_id', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('actual_id'),
    sa.UniqueConstraint('actual_id', 'kind')
    )
    op.create_table('projects',
    sa.Column('project_id', sa.String(length=30), nullable=False),
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('project_manager', sa.String(length=64), nullable=False),
    sa.Column('billable', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('project_id')
    )
    op.create_table('shared_categories',
    sa.Column('category', sa.String(length=30), nullable=False),
    sa.Column('transaction_class', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=True),
    sa.Column('can_be_used_in_expense', sa.Boolean(), nullable=False),
    sa.Column('expense_type', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('category', 'transaction_class')
    )
    op.create_table('tax_codes',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('tax_code', sa.String(length=30), nullable=False),
    sa.Column('rate', shared.sql_types.FixedPoint(scale=6, precision=18), nullable=False),
    sa.Column('recoverable_share', shared.sql_types.FixedPoint(scale=6, precision=18), nullable=False),
    sa.Column('tax_account', sa.String(length=20), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'tax_code')
    )
    op.create_table('tax_transactions',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=False),
    sa.Column('line_number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('report_id', sa.String(length=30), nullable=False),
    sa.Column('tax_code', sa.String(length=30), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('base_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('tax_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('recoverable_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('non_recoverable_amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('recoverable_accounting', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'voucher', 'line_number')
    )
    op.create_table('vendor_transactions',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('voucher', sa.String(length=60), nullable=False),
    sa.Column('vendor_account', sa.String(length=20), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=False),
    sa.Column('report_id', sa.String(length=30), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('amount', shared.sql_types.FixedPoint(scale=2, precision=18), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'voucher')
    )
    op.create_table('workers',
    sa.Column('legal_entity', sa.String(length=8), nullable=False),
    sa.Column('worker', sa.String(length=64), nullable=False),
    sa.Column('vendor_account', sa.String(length=20), nullable=False),
    sa.Column('manager', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('legal_entity', 'worker')
    )


def downgrade() -> None:
    op.drop_table('workers')
    op.drop_table('vendor_transactions')
    op.drop_table('tax_transactions')
    op.drop_table('tax_codes')
    op.drop_table('shared_categories')
    op.drop_table('projects')
    op.drop_table('project_transactions')
    op.drop_index('ix_outbox_unsent', table_name='outbox')
    op.drop_index(op.f('ix_outbox_correlation_id'), table_name='outbox')
    op.drop_index(op.f('ix_outbox_causation_id'), table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('legal_entities')
    op.drop_index('ix_ledger_account', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    op.drop_index('ix_journal_status', table_name='integration_journals')
    op.drop_table('integration_journals')
    op.drop_table('integration_journal_lines')
    op.drop_index(op.f('ix_inbox_correlation_id'), table_name='inbox')
    op.drop_table('inbox')
    op.drop_table('expense_reports')
    op.drop_table('expense_lines')
    op.drop_table('expense_categories')
    op.drop_table('exchange_rates')
    op.drop_index(op.f('ix_dead_letters_message_id'), table_name='dead_letters')
    op.drop_table('dead_letters')
    op.drop_table('category_accounts')
    op.drop_index('ix_staging_status', table_name='actuals_staging')
    op.drop_table('actuals_staging')
    op.drop_table('accounts')
