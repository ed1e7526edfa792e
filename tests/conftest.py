"""Test backends: the embedded default, and the real Redis and PostgreSQL of the machine.

One test body runs on both. The ``backend`` fixture gives the :class:`Settings` for one of them:

- ``embedded``: fakeredis in process and SQLite files in the test's ``tmp_path``;
- ``services``: real Redis (a dedicated db number, flushed before and after each test) and real
  PostgreSQL (three databases, one per side, created once per session with a unique suffix,
  their schema recreated before each test and the databases dropped at the end).

A service may be missing on a laptop: its tests are then skipped. Under CI they fail instead, so
an unreachable service can never turn a CI run green by skipping.

Override where the services are with ``DUALWRITE_TEST_REDIS_URL`` (its db number is the one that
gets flushed) and ``DUALWRITE_TEST_POSTGRES_URL`` (a maintenance database to connect to).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from sqlalchemy.engine import make_url

from shared.settings import EMBEDDED, Settings
from shared.waiting import Timeout, wait_until

REDIS_URL = os.environ.get("DUALWRITE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("DUALWRITE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SIDES = ("finance", "dataverse", "bridge")

#: Small and fast retry policy: a transient failure is retried within milliseconds.
MAX_RETRIES = 2
FAST = {
    "worker_threads": 4,
    "max_retries": MAX_RETRIES,
    "min_backoff_ms": 10,
    "max_backoff_ms": 100,
    "outbox_sweep_seconds": 0.1,
    "outbox_resend_after_seconds": 0.5,
    "heartbeat_timeout_ms": 60_000,
    "dead_letter_ttl_days": 1,
    "log_level": "WARNING",
    "log_format": "json",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**overrides): Settings fields the test's backend uses instead of the fast defaults"
    )


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(name: str, error: BaseException) -> None:
    """Skip on a laptop without the service; fail under CI, where every service must be up."""
    if under_ci():
        pytest.fail(f"{name} unreachable under CI ({error}); integration tests never skip there", pytrace=False)
    pytest.skip(f"{name} unreachable ({type(error).__name__}: {error}); under CI=true this fails")


# -- Redis ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    url: str
    client: redis.Redis

    def flush(self) -> None:
        self.client.flushdb()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The real Redis, reserved for this session: two test runs never flush each other's db."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=10)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        client.close()
        unavailable(f"Redis at {REDIS_URL}", error)
    where = client.connection_pool.connection_kwargs
    lock_path = Path(tempfile.gettempdir()) / f"dualwrite-tests-redis-{where.get('port')}-{where.get('db', 0)}.lock"
    with open(lock_path, "w") as lock:

        def locked() -> bool:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        try:
            wait_until(locked, timeout=300, interval=0.2, what=f"exclusive use of {REDIS_URL} (another test run holds it)")
        except Timeout as error:
            pytest.fail(str(error), pytrace=False)
        try:
            yield RedisServer(REDIS_URL, client)
        finally:
            client.flushdb()
            client.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The dedicated Redis db, empty at the start and at the end of the test."""
    redis_server.flush()
    yield redis_server
    redis_server.flush()


# -- PostgreSQL ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """Three databases, one per side, on the real PostgreSQL."""

    urls: dict[str, str]

    def reset(self) -> None:
        """An empty public schema in each side's database: the tables are recreated by the test."""
        for url in self.urls.values():
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
                connection.execute("CREATE SCHEMA public")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as error:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", error)
    base = make_url(POSTGRES_URL)
    suffix = uuid.uuid4().hex[:10]
    names = {side: f"dualwrite_it_{suffix}_{side}" for side in SIDES}
    try:
        for name in names.values():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        urls = {side: base.set(database=name).render_as_string(hide_password=False) for side, name in names.items()}
        yield PostgresServer(urls)
    finally:
        for name in names.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


# -- the backend a test body runs on -------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    settings: Settings

    @property
    def real_services(self) -> bool:
        return self.name == "services"


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        broker_url=EMBEDDED,
        data_dir=data_dir,
        finance_db_url=None,
        dataverse_db_url=None,
        bridge_db_url=None,
        **{**FAST, **overrides},
    )


def services_settings(redis_url: str, postgres: PostgresServer, data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        broker_url=redis_url,
        data_dir=data_dir,
        finance_db_url=postgres.urls["finance"],
        dataverse_db_url=postgres.urls["dataverse"],
        bridge_db_url=postgres.urls["bridge"],
        **{**FAST, **overrides},
    )


@pytest.fixture(
    params=[
        pytest.param("embedded"),
        pytest.param("services", marks=[pytest.mark.redis, pytest.mark.postgres]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Settings for the embedded default or for the real Redis and PostgreSQL, ready to use.

    ``@pytest.mark.settings(outbox_sweep_seconds=60)`` on a test overrides the fast defaults.
    """
    marker = request.node.get_closest_marker("settings")
    overrides = dict(marker.kwargs) if marker else {}
    if request.param == "embedded":
        yield Backend("embedded", embedded_settings(tmp_path / "data", **overrides))
        return
    redis_db: RedisServer = request.getfixturevalue("redis_db")
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    postgres.reset()
    yield Backend("services", services_settings(redis_db.url, postgres, tmp_path / "data", **overrides))
