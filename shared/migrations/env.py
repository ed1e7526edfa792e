"""Alembic environment of every side: run by :mod:`shared.migrations` with a Config built in code.

The connection and the side's metadata come in ``config.attributes``; there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=config.attributes["metadata"],
    compare_type=True,
    # SQLite alters tables by copying them; PostgreSQL alters them in place.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
