"""The inbox keeps one row per part of a message (one business document's rows), and the id of
the message that carried it.

A message may carry the rows of several documents (its envelope's ``parts``); each part is applied
once by its own id, whatever message carries it. ``carried_by`` is the id of the message as the
broker knew it (the one logs and dead letters name). Rows applied before this revision were whole
messages of one part: their ``carried_by`` stays empty.

Revision ID: 0008_inbox_parts
Revises: 0007_ids_in_any_case
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_inbox_parts'
down_revision = '0007_ids_in_any_case'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox", sa.Column("carried_by", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("carried_by")
