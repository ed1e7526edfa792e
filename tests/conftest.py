"""Test backends: the embedded default, and the real Redis and PostgreSQL of the machine.

One test body runs on both. The ``backend`` fixture gives the :class:`Settings` for one of them:

- ``embedded``: fakeredis in process and SQLite files in the test's ``tmp_path``;
- ``services``: real Redis (a dedicated db number, flushed before and after each test) and real
  PostgreSQL (three databases, one per side, created once per session with a unique suffix,
  their schema recreated before each test and the databases dropped at the end). A test that runs
  the workers (``system``) gets the sides' tables empty instead: made once, then emptied for each
  test for as long as the schema is exactly what was made (:meth:`PostgresServer.fresh_tables`);
  making the tables costs about half a second a test, emptying them a few milliseconds.

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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
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


#: Everything of the public schema a test could change besides rows, one line each, sorted.
SCHEMA_FINGERPRINT = """
SELECT coalesce(string_agg(line, E'\\n' ORDER BY line), '') FROM (
    SELECT 'class ' || relname || ' ' || relkind::text AS line FROM pg_class WHERE relnamespace = 'public'::regnamespace
    UNION ALL SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
        || ' ' || attnotnull::text || ' ' || coalesce(pg_get_expr(adbin, adrelid), '')
        FROM pg_attribute JOIN pg_class ON pg_class.oid = attrelid
        LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
        WHERE relnamespace = 'public'::regnamespace AND attnum > 0 AND NOT attisdropped
    UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL SELECT 'type ' || typname::text FROM pg_type WHERE typnamespace = 'public'::regnamespace
    UNION ALL SELECT 'trigger ' || tgname::text FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid
        WHERE relnamespace = 'public'::regnamespace AND NOT tgisinternal
    UNION ALL SELECT 'function ' || proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace
) AS schema
"""


@dataclass(frozen=True)
class PostgresServer:
    """Three databases, one per side, on the real PostgreSQL."""

    urls: dict[str, str]
    #: What :meth:`fresh_tables` made last: its key and each database's schema fingerprint.
    made: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def reset(self) -> None:
        """An empty public schema in each side's database: the tables are recreated by the test."""
        self.made.clear()
        for url in self.urls.values():
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
                connection.execute("CREATE SCHEMA public")

    def fresh_tables(self, key: Any, create_tables: Callable[[], None]) -> None:
        """The tables ``create_tables`` makes, each empty, as on a freshly reset schema.

        The first time (or after :meth:`reset`, a schema any test changed, or another ``key``), the
        schema is reset and ``create_tables`` run; afterwards, while every database's schema is
        exactly what it made, every row is deleted and every sequence restarted instead: what a test
        sees is the same, in a fraction of the time.
        """
        if self.made.get("key") == key:
            with ExitStack() as open_:
                connections = {
                    side: open_.enter_context(psycopg.connect(url, autocommit=True, connect_timeout=5))
                    for side, url in self.urls.items()
                }
                if {side: _fingerprint(c) for side, c in connections.items()} == self.made["fingerprints"]:
                    for side, connection in connections.items():
                        with connection.transaction():
                            connection.execute(self.made["emptying"][side])
                    return
        self.reset()
        create_tables()
        fingerprints, emptying = {}, {}
        for side, url in self.urls.items():
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                fingerprints[side] = _fingerprint(connection)
                emptying[side] = _emptying(connection)
        self.made.update(key=key, fingerprints=fingerprints, emptying=emptying)


def _fingerprint(connection: psycopg.Connection[Any]) -> str:
    return connection.execute(SCHEMA_FINGERPRINT).fetchone()[0]


def _emptying(connection: psycopg.Connection[Any]) -> sql.Composed:
    """Statements that empty every table of the public schema and restart every sequence.

    DELETE, children before the tables they reference (an empty table's DELETE is a fraction of a
    millisecond; TRUNCATE makes new files for every table and index); TRUNCATE of them all when
    their references go round in a circle or a table has a trigger of its own.
    """
    in_public = "relnamespace = 'public'::regnamespace"
    tables = {row[0] for row in connection.execute(f"SELECT relname FROM pg_class WHERE {in_public} AND relkind IN ('r', 'p')")}
    sequences = sorted(row[0] for row in connection.execute(f"SELECT relname FROM pg_class WHERE {in_public} AND relkind = 'S'"))
    references = set(connection.execute(
        "SELECT child.relname, parent.relname FROM pg_constraint "
        "JOIN pg_class AS child ON child.oid = conrelid JOIN pg_class AS parent ON parent.oid = confrelid "
        "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
    ).fetchall())
    triggers = connection.execute(
        f"SELECT count(*) FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid WHERE {in_public} AND NOT tgisinternal"
    ).fetchone()[0]
    order: list[str] = []
    left = set(tables)
    while left:
        # the tables no table still to be emptied references
        ready = sorted(t for t in left if not any(parent == t and child in left for child, parent in references))
        if not ready:
            break
        order.extend(ready)
        left -= set(ready)
    statements: list[sql.Composable] = []
    if left or triggers:  # references in a circle (a table referencing itself among them), or a trigger
        if tables:
            statements.append(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier("public", name) for name in sorted(tables))
                )
            )
    else:
        statements.extend(sql.SQL("DELETE FROM {}").format(sql.Identifier("public", name)) for name in order)
    statements.extend(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier("public", name)) for name in sequences)
    return sql.SQL("; ").join(statements) if statements else sql.SQL("SELECT 1")


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
    #: The real PostgreSQL of ``services`` (None on the embedded default).
    postgres: PostgresServer | None = None

    @property
    def real_services(self) -> bool:
        return self.name == "services"

    def fresh_tables(self, runtime: Any) -> None:
        """The tables of ``runtime``'s sides, empty (``Runtime.create_tables`` on a fresh schema)."""
        if self.postgres is None:
            runtime.create_tables()
        else:
            self.postgres.fresh_tables(tuple(sorted(runtime.sides)), runtime.create_tables)


#: Fixtures that make their tables with :meth:`Backend.fresh_tables` (tests/integration/conftest.py's
#: ``system``, test_dataverse_expenses.py's ``dataverse``, test_trace.py's ``stopped``): the backend
#: does not reset the schema of a test that uses one of them.
FRESH_TABLES_FIXTURES = frozenset({"system", "dataverse", "stopped"})


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


BACKENDS = [
    pytest.param("embedded"),
    pytest.param("services", marks=[pytest.mark.redis, pytest.mark.postgres]),
]


@pytest.fixture(params=BACKENDS)
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
    if FRESH_TABLES_FIXTURES.isdisjoint(request.fixturenames):
        postgres.reset()
    yield Backend("services", services_settings(redis_db.url, postgres, tmp_path / "data", **overrides), postgres)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """As ``backend``, shared by the tests of one module that look at what one run left behind.

    The Redis db is emptied before and after the module; the databases' tables are made by the
    module's own fixture with :meth:`Backend.fresh_tables` (nothing here resets them).
    """
    data_dir = tmp_path_factory.mktemp(request.param) / "data"
    if request.param == "embedded":
        yield Backend("embedded", embedded_settings(data_dir))
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    postgres: PostgresServer = request.getfixturevalue("postgres_server")
    redis_server.flush()
    try:
        yield Backend("services", services_settings(redis_server.url, postgres, data_dir), postgres)
    finally:
        redis_server.flush()
