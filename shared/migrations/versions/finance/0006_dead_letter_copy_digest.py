"""Each dead letter's row keeps the SHA-256 of the exact bytes the broker held (``copy_digest``).

Message ids are the senders' to choose: a stranger (or a careless sender) reusing a real message's
id makes two letters with one id. The operator tools (``dualwrite dlq``) pair each row with its own
copy in ``<queue>.XQ`` by this digest. Rows recorded before this revision have none: they are
paired by message id, preferring a copy that carries the row's own envelope, as before.

Revision ID: 0006_dead_letter_copy_digest
Revises: 0005_inbox_digest
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_dead_letter_copy_digest'
down_revision = '0005_inbox_digest'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("copy_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("copy_digest")
