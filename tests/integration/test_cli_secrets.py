"""No password of a broker or database URL is ever printed: every command, services reachable or not.

Each command runs as an operator runs it, with ``DUALWRITE_*`` URLs that carry a password:
``redis://:PASSWORD@...``, ``amqp://user:PASSWORD@...``, ``postgresql://user:PASSWORD@...``.
Whatever it prints (tables, ``--json``, error lines, log lines) shows ``***`` where the password
was, never the password. Unreachable services are closed ports of this machine (nothing needed);
reachable ones are the real Redis, RabbitMQ (a throwaway user with a password) and PostgreSQL,
which accepts any password from this machine.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from shared.redaction import forget_secrets
from tests.conftest import PostgresServer, RedisServer, unavailable
from tests.e2e.brokers import BrokerUnavailable, _rabbitmqctl, throwaway_vhost
from workers.cli import main
from workers.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-Secret-pw"
SETUP = REPO / "workers" / "demo_data" / "setup.yaml"
CATEGORIES = '{"rows": [{"category": "HOTEL", "name": "Hotel"}]}'
SIDES = ("finance", "dataverse", "bridge")

#: Every command that reaches a broker or a database; ``@document`` and ``@setup`` stand for input files.
COMMANDS: dict[str, tuple[str, ...]] = {
    "queues": ("queues",),
    "queues --json": ("queues", "--json"),
    "publish": ("publish", "create_transaction_categories", "@document"),
    "publish --json": ("publish", "create_transaction_categories", "@document", "--json"),
    "health": ("health",),
    "health --json": ("health", "--json"),
    "db upgrade": ("db", "upgrade"),
    "db upgrade --json": ("db", "upgrade", "--json"),
    "db status": ("db", "status"),
    "db status --json": ("db", "status", "--json"),
    "setup": ("setup", "@setup", "--json"),
    "finance import-from-staging": ("finance", "import-from-staging", "--json"),
    "reconcile": ("reconcile", "--json"),
    "jobs": ("jobs", "--json"),
    "jobs retry": ("jobs", "retry", "--failed", "--json"),
    "trace": ("trace", "R-US-001"),
    "maps list": ("maps", "list", "--json"),
    "maps initial-sync --status": ("maps", "initial-sync", "msdyn_expensecategories", "--status", "--json"),
    "audit": ("audit", "--json"),
    "dlq list": ("dlq", "list", "--json"),
    "dlq replay": ("dlq", "replay", "--all", "--json"),
}
#: The commands that use the broker (the others read databases only).
BROKER_COMMANDS = ["queues", "queues --json", "publish", "publish --json", "health", "health --json", "jobs retry", "dlq replay"]


def with_password(url: str, user: str = "dualwrite") -> str:
    """``url`` with SECRET as its password (and ``user`` when it names none; Redis takes a password alone)."""
    parts = urlsplit(url)
    name = parts.username if parts.username is not None else ("" if parts.scheme.startswith("redis") else user)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(name, safe='')}:{SECRET}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def environment(monkeypatch: pytest.MonkeyPatch, data_dir: Path, broker_url: str, database_urls: dict[str, str]) -> None:
    for name in ("DUALWRITE_BROKER_URL", *(f"DUALWRITE_{side.upper()}_DB_URL" for side in SIDES)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DUALWRITE_BROKER_URL", broker_url)
    for side, url in database_urls.items():
        monkeypatch.setenv(f"DUALWRITE_{side.upper()}_DB_URL", url)
    monkeypatch.setenv("DUALWRITE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("DUALWRITE_LOG_LEVEL", "DEBUG")  # every line a command may log, on stderr
    monkeypatch.setenv("DUALWRITE_LOG_FORMAT", "json")


def dualwrite(argv: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``dualwrite ARGV`` in this process, as from a fresh start (no secret remembered); its status and all it printed."""
    document = tmp_path / "document.json"
    document.write_text(CATEGORIES)
    files = {"@document": str(document), "@setup": str(SETUP)}
    forget_secrets()
    capsys.readouterr()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers[:] = []  # as in a fresh process: none left by an earlier test, bound to its closed stderr
    try:
        status = main([files.get(argument, argument) for argument in argv])
    except SystemExit as exit:
        status = int(exit.code or 0)
    finally:  # a command that set logging up wrote to this test's captured stderr: not the next one's
        root.handlers[:], root.level = handlers, level
    captured = capsys.readouterr()
    return int(status), captured.out + captured.err


def assert_no_secret(printed: str) -> None:
    assert SECRET not in printed, printed
    assert quote(SECRET, safe="") not in printed, printed
    assert "Traceback" not in printed and "unexpected error" not in printed, printed
    # Every URL printed with credentials shows *** for the password.
    for url in re.findall(r"[a-z+]+://[^\s\"'@/]*@", printed):
        assert url.endswith(":***@") or ":" not in url.split("://", 1)[1], url


# -- unreachable: closed ports of this machine ---------------------------------------------------

CLOSED_DATABASES = {side: f"postgresql://dualwrite:{SECRET}@127.0.0.1:1/{side}" for side in SIDES}
CLOSED_BROKERS = {
    "redis": f"redis://:{SECRET}@127.0.0.1:1/0",
    "rabbitmq": f"amqp://dualwrite:{SECRET}@127.0.0.1:1/%2F",
}
UNREACHABLE = [
    pytest.param("redis", name, id=f"redis-{name}") for name in COMMANDS
] + [pytest.param("rabbitmq", name, id=f"rabbitmq-{name}") for name in BROKER_COMMANDS]


@pytest.mark.parametrize(("broker", "name"), UNREACHABLE)
def test_unreachable_services_are_named_without_their_password(
    broker: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given URLs with a password, on ports nobody listens on
    environment(monkeypatch, tmp_path / "data", CLOSED_BROKERS[broker], CLOSED_DATABASES)

    # When an operator runs the command
    status, printed = dualwrite(COMMANDS[name], tmp_path, capsys)

    # Then it says what it could not reach, never the password, and exits 4 (health: 7)
    assert status == (ExitCode.UNHEALTHY if name.startswith("health") else ExitCode.UNAVAILABLE), printed
    assert_no_secret(printed)
    if name in BROKER_COMMANDS and name not in ("jobs retry", "dlq replay"):  # the broker is named, *** for its password
        assert "***@127.0.0.1:1" in printed, printed


def test_a_configuration_error_never_echoes_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "DUALWRITE_BROKER_URL": f"ftp://user:{SECRET}@broker/x",
        "DUALWRITE_FINANCE_DB_URL": f"postgresql://user:{SECRET}@db:{SECRET}/finance",
    }
    for variable, value in bad.items():
        environment(monkeypatch, tmp_path / "data", "embedded://", {})
        monkeypatch.setenv(variable, value)

        status, printed = dualwrite(("queues",), tmp_path, capsys)

        assert status == ExitCode.CONFIGURATION, printed
        assert variable in printed and printed.count("\n") == 1, printed
        assert_no_secret(printed)


# -- reachable: the real services, with a password in every URL -----------------------------------


@contextmanager
def rabbitmq_user() -> Iterator[str]:
    """An AMQP URL of a throwaway vhost and a throwaway user whose password is SECRET."""
    user = f"dualwrite-secrets-{uuid.uuid4().hex[:8]}"
    with throwaway_vhost() as vhost_url:
        _rabbitmqctl("add_user", user, SECRET)
        try:
            vhost = urlsplit(vhost_url).path.lstrip("/")
            _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
            yield with_password(vhost_url.replace(urlsplit(vhost_url).username or "guest", user, 1), user)
        finally:
            _rabbitmqctl("delete_user", user)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.postgres]),
        pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.postgres]),
    ]
)
def reachable(request: pytest.FixtureRequest, postgres_server: PostgresServer) -> Iterator[tuple[str, dict[str, str]]]:
    """The broker URL and the three database URLs, each with SECRET for a password, of the real services."""
    postgres_server.reset()
    databases = {side: with_password(url) for side, url in postgres_server.urls.items()}
    if request.param == "redis":
        redis_db: RedisServer = request.getfixturevalue("redis_db")
        yield with_password(redis_db.url), databases
        return
    try:
        with rabbitmq_user() as url:
            yield url, databases
    except BrokerUnavailable as error:
        unavailable("RabbitMQ", error)


def test_services_reached_with_passwords_never_show_them(
    reachable: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broker_url, database_urls = reachable
    environment(monkeypatch, tmp_path / "data", broker_url, database_urls)

    outcomes: dict[str, Any] = {}
    for name, argv in COMMANDS.items():  # in order: db upgrade before the commands that read the schema
        status, printed = dualwrite(argv, tmp_path, capsys)
        outcomes[name] = status
        assert_no_secret(printed)

    # They did reach the services: nothing was unavailable
    assert ExitCode.UNAVAILABLE not in outcomes.values(), outcomes
    assert outcomes["publish --json"] == outcomes["db upgrade"] == outcomes["setup"] == ExitCode.OK, outcomes
