"""Two-way maps keep one version per row: their rows in map_row_versions are deleted.

Until now every live message of ``msdyn_projects`` (the one two-way map) advanced two versions per
key: its time stamp in ``map_row_versions`` (the initial sync's notion, for maps whose rows carry no
version) and its row version in ``two_way_rows`` (0005_row_versions). The bridge now decides a
two-way map's synced copies by the row version alone (``workers/bridge/row_versions.py``), so its
time stamps are never read again; they are deleted rather than left to mislead. Nothing is lost:
every key they hold that was carried since 0005 has its row version in ``two_way_rows``, and a key
carried only before 0005 was carried unversioned (contract v1), which is what a key missing from
``two_way_rows`` means. The one-way maps' time stamps stay. The downgrade cannot bring the deleted
stamps back; without them the old code carries the next synced copy of such a key, which the
sides' own row-version check still refuses when it is older.

Revision ID: 0007_two_way_versions_only
Revises: 0006_drop_map_states_applied
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_two_way_versions_only'
down_revision = '0006_drop_map_states_applied'
branch_labels = None
depends_on = None

#: The two-way maps as declared when this revision was written (contracts/maps.yaml).
TWO_WAY_MAPS = ('msdyn_projects',)


def upgrade() -> None:
    map_row_versions = sa.table('map_row_versions', sa.column('map', sa.String))
    op.execute(map_row_versions.delete().where(map_row_versions.c.map.in_(TWO_WAY_MAPS)))


def downgrade() -> None:
    pass
