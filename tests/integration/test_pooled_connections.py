"""Pooled PostgreSQL connections: one the server dropped while it rested is replaced, not used."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import exc, text

from shared import database
from shared.database import make_engine

pytestmark = pytest.mark.postgres


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def _backend_pid(engine) -> int:  # noqa: ANN001
    with engine.connect() as connection:
        return connection.scalar(text("SELECT pg_backend_pid()"))


def test_a_dropped_connection_that_rested_is_replaced_before_use(postgres_server, monkeypatch) -> None:
    url = postgres_server.urls["finance"]
    engine = make_engine(url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(url, first)
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)

        second = _backend_pid(engine)  # the ping found it dead: a new connection, no error

        assert second != first
    finally:
        engine.dispose()


def test_a_connection_in_constant_use_is_not_pinged(postgres_server, monkeypatch) -> None:
    url = postgres_server.urls["finance"]
    engine = make_engine(url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(url, first)
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 3600.0)

        # No round trip before the statement: the statement itself meets the dropped connection...
        with pytest.raises(exc.OperationalError) as failure:
            _backend_pid(engine)
        assert failure.value.connection_invalidated

        # ...which invalidates it, so the next unit of work (a retried message) gets a new one.
        assert _backend_pid(engine) not in (first, None)
    finally:
        engine.dispose()
