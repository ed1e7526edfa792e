"""``dualwrite health [--side S] [--json]``: is this deployment fit to work? For people and for
container health checks (compose.yaml runs ``dualwrite health --side <side>``).

Checks, each reported with what it found:

- **broker**: Redis answers PING; RabbitMQ accepts an AMQP connection. The embedded broker lives
  inside the process that uses it, so there is nothing outside it to check.
- **database:<side>** (all three, or the one of ``--side``): it accepts a connection and its
  schema is at the head of the side's migrations.
- **heartbeats**: on Redis, every dramatiq consumer writes its broker id and the time into the
  sorted set ``dramatiq:__heartbeats__`` each time it fetches (its Lua ``dispatch.lua``:
  ``zadd(heartbeats, timestamp, worker_id)``); healthy when at least one is younger than
  ``DUALWRITE_HEARTBEAT_TIMEOUT_MS``. Dramatiq's broker ids do not name a side, so this counts
  the worker processes on the broker, whatever their side. RabbitMQ keeps no heartbeats a client
  can read (its consumers are tracked by the connection itself): reported as n/a, not a failure.

Exit 0 when every check passes, 7 (UNHEALTHY) otherwise.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

from shared.connectivity import describe
from shared.redaction import redact_text, redact_url
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import print_json

SIDES = ("finance", "dataverse", "bridge")
HEARTBEATS_KEY = "dramatiq:__heartbeats__"
TIMEOUT_SECONDS = 3


@dataclass(frozen=True)
class Check:
    name: str
    #: None: does not apply here (heartbeats on RabbitMQ or the embedded broker).
    ok: bool | None
    detail: str


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "health", help="check the broker, the databases and their migrations, and worker heartbeats"
    )
    parser.add_argument("--side", choices=SIDES, help="check this side's database only (default: all three)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    checks = check_health(settings, [args.side] if args.side else list(SIDES))
    ok = all(check.ok is not False for check in checks)
    if args.json:
        print_json({"ok": ok, "checks": [asdict(check) for check in checks]})
    else:
        for check in checks:
            state = "n/a " if check.ok is None else "ok  " if check.ok else "FAIL"
            print(f"{state} {check.name}: {check.detail}")
        print("healthy" if ok else "UNHEALTHY")
    return ExitCode.OK if ok else ExitCode.UNHEALTHY


def check_health(settings: Settings, sides: list[str]) -> list[Check]:
    checks = [_broker(settings)]
    checks += [_database(settings, side) for side in sides]
    checks.append(_heartbeats(settings, broker_ok=bool(checks[0].ok)))
    return checks


def _error(error: BaseException) -> str:
    """``ConnectionError: Error 111 connecting to ...``: a check's detail on one line, the driver's error
    rather than SQLAlchemy's wrapper, URL passwords and the configured secrets as ``***``."""
    return redact_text(describe(error))


def _is_amqp(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://"))


def _broker(settings: Settings) -> Check:
    url = settings.broker_url
    if settings.embedded_broker:
        return Check("broker", True, "embedded: in-process Redis of the process that uses it")
    try:
        if _is_amqp(url):
            from kombu import Connection

            with Connection(url, connect_timeout=TIMEOUT_SECONDS) as connection:
                connection.ensure_connection(max_retries=1)
            return Check("broker", True, "RabbitMQ accepts connections")
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
        return Check("broker", True, "Redis answers PING")
    except Exception as error:  # any failure to reach the broker is the answer
        return Check("broker", False, f"unreachable at {redact_url(url)}: {_error(error)}")


def _database(settings: Settings, side: str) -> Check:
    from sqlalchemy.exc import DBAPIError

    from contracts.envelope import Side
    from shared import migrations
    from shared.side import open_database
    from workers.runtime import SPECS

    name = f"database:{side}"
    try:
        database = open_database(SPECS[Side(side)], settings)
    except Exception as error:  # a URL SQLAlchemy cannot even parse
        return Check(name, False, f"bad URL: {_error(error)}")
    try:
        found = migrations.revisions(database)
    except DBAPIError as error:
        return Check(name, False, f"unavailable: {_error(error)}")
    except Exception as error:  # a driver refusing the URL, a missing file's folder...
        return Check(name, False, f"unavailable: {_error(error)}")
    finally:
        database.dispose()
    if not found.at_head:
        return Check(name, False, f"schema at {found.current or 'no revision'}, head is {found.head}: run `dualwrite db upgrade`")
    return Check(name, True, f"schema at head {found.head}")


def _heartbeats(settings: Settings, *, broker_ok: bool) -> Check:
    if settings.embedded_broker:
        return Check("heartbeats", None, "n/a: the embedded broker keeps them inside its own process")
    if _is_amqp(settings.broker_url):
        return Check("heartbeats", None, "n/a on RabbitMQ: the broker keeps no heartbeats a client can read")
    if not broker_ok:
        return Check("heartbeats", False, "broker unreachable")
    import redis

    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        now_ms = int(time.time() * 1000)
        fresh = client.zcount(HEARTBEATS_KEY, now_ms - settings.heartbeat_timeout_ms, "+inf")
        stale = client.zcount(HEARTBEATS_KEY, "-inf", f"({now_ms - settings.heartbeat_timeout_ms}")
    except Exception as error:
        return Check("heartbeats", False, f"cannot read {HEARTBEATS_KEY}: {_error(error)}")
    finally:
        client.close()
    within = f"within {settings.heartbeat_timeout_ms / 1000:g} s"
    if fresh == 0:
        return Check("heartbeats", False, f"no worker process has fetched from Redis {within} ({stale} stale)")
    return Check("heartbeats", True, f"{fresh} worker process(es) fetched {within} ({stale} stale)")

