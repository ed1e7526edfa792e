"""Container health check of one worker: its broker answers and its database holds its tables.

Used by compose.yaml as ``python deploy/healthcheck.py <side>``; exits 0 when healthy, 1 when not,
printing one line either way. It reads the same DUALWRITE_* settings as the worker it checks.
"""

from __future__ import annotations

import sys

import redis
from kombu import Connection
from sqlalchemy import inspect

from shared.database import make_engine
from shared.settings import Settings

SIDES = ("finance", "dataverse", "bridge")


def broker_answers(url: str) -> None:
    if url.startswith(("amqp://", "amqps://")):
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    else:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()


def side_tables_exist(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        missing = {"inbox", "outbox", "dead_letters"} - set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if missing:
        raise RuntimeError(f"tables not created yet: {', '.join(sorted(missing))}")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SIDES:
        print(f"usage: healthcheck.py {{{','.join(SIDES)}}}", file=sys.stderr)
        return 2
    side = argv[0]
    settings = Settings()
    try:
        broker_answers(settings.broker_url)
        side_tables_exist(settings.database_url(side))
    except Exception as error:  # any failure means unhealthy; say which
        print(f"{side}: unhealthy: {type(error).__name__}: {error}")
        return 1
    print(f"{side}: healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
