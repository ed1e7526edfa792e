"""Dataverse's companies (legal_entities), loaded by `dualwrite setup`: a message for any other is refused.

Until this revision Dataverse created rows for any company and finance refused them later. A
database upgraded to it holds no company yet: run `dualwrite setup FILE` again (it loads the
companies into Dataverse and changes nothing in finance) before the Dataverse worker takes
company-scoped messages; those it refuses meanwhile are dead letters an operator can replay.

Revision ID: 0006_legal_entities
Revises: 0005_dead_letter_copy_digest
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_legal_entities'
down_revision = '0005_dead_letter_copy_digest'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_entities",
        sa.Column("legal_entity", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("legal_entity"),
    )


def downgrade() -> None:
    op.drop_table("legal_entities")
