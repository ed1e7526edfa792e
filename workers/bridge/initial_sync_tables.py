"""The bridge's record of initial syncs: runs, their pages, refused rows, rows carried, and row versions.

Defined on the bridge's metadata (``workers.bridge.tables``), created by revision ``0004_initial_sync``.
Counts of a run are sums over its pages and rows, never counters bumped per message: a page or a row
that arrives twice (a resumed run going over a page again) is recorded once.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Table, Text

from workers.bridge.tables import metadata

#: One row per run of ``dualwrite maps initial-sync``.
initial_sync_runs = Table(
    "initial_sync_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("map", String(64), nullable=False),
    Column("master", String(16), nullable=False),
    #: running or finished.
    Column("state", String(16), nullable=False),
    Column("page_size", Integer, nullable=False),
    #: Rows the master held when the run started (the progress bar's total; live changes move it).
    Column("total_rows", Integer),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    #: How often an operator resumed it from its checkpoint.
    Column("resumes", Integer, nullable=False),
    Index("ix_initial_sync_runs_map_started", "map", "started_at"),
)

#: One row per page the master exported, as its report said.
initial_sync_pages = Table(
    "initial_sync_pages",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("page", Integer, primary_key=True, autoincrement=False),
    #: JSON lists: the key the page started after, and the key of its last row (the checkpoint).
    Column("after_key", Text),
    Column("last_key", Text),
    Column("rows_read", Integer, nullable=False),
    Column("rows_sent", Integer, nullable=False),
    Column("rows_failed", Integer, nullable=False),
    Column("finished", Boolean, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
)

#: Every row of a run that was not carried, with its integration key and why.
initial_sync_failures = Table(
    "initial_sync_failures",
    metadata,
    Column("run_id", String(32), primary_key=True),
    #: JSON list of the key's values.
    Column("key", String(400), primary_key=True),
    Column("page", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: Every synced row the bridge saw, once: carried to the target, or superseded (a newer live
#: change of the same key had been carried already, so the older synced copy was dropped).
initial_sync_rows = Table(
    "initial_sync_rows",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: The newest version of each row the bridge carried, for maps with an initial sync: the master's
#: time stamp (``occurred_at``) of the message that carried it. A synced copy older than this is
#: not carried.
map_row_versions = Table(
    "map_row_versions",
    metadata,
    Column("map", String(64), primary_key=True),
    Column("key", String(400), primary_key=True),
    Column("version", DateTime(timezone=True), nullable=False),
    Column("message_id", String(36), nullable=False),
)
