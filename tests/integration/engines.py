"""An engine with a module's own tables, on SQLite and on the real PostgreSQL, for statement-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, MetaData

from shared.database import make_engine

BACKENDS = ["sqlite", "postgresql"]


def engine_with(request: pytest.FixtureRequest, tmp_path: Path, metadata: MetaData) -> Iterator[Engine]:
    """``metadata``'s tables on the backend ``request.param`` names; dropped, and the engine disposed, after."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tables.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        server.reset()
        url = server.urls["finance"]
    engine = make_engine(url)
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        metadata.drop_all(engine)
        engine.dispose()
