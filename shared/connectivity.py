"""Can this process reach its broker and its databases? Checked, with a deadline, before a worker starts.

A worker that starts while the broker or a database is down (a deployment bringing everything up
at once, a wrong host) retries every few seconds, logging one line per attempt, for
``DUALWRITE_CONNECT_TIMEOUT_SECONDS``; then it gives up and exits 4 (UNAVAILABLE) with a message
naming what it could not reach, rather than starting consumers that would log connection errors
for ever. Every URL logged or printed has its password hidden (shared/redaction.py).

Each attempt is bounded too: a host that drops packets (no refusal, no answer) costs at most
:data:`ATTEMPT_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from shared.redaction import redact_text, redact_url, url_secrets

#: The longest one connection attempt may take (a host that never answers).
ATTEMPT_TIMEOUT_SECONDS = 5.0
#: The first pause between attempts; it doubles up to :data:`MAX_PAUSE_SECONDS`.
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 5.0


def check_broker(url: str, timeout: float) -> None:
    """Raise unless the broker at ``url`` answers within ``timeout`` seconds: Redis PING, or an AMQP connection."""
    if url.startswith(("amqp://", "amqps://")):
        import pika

        parameters = pika.URLParameters(url)
        parameters.connection_attempts = 1
        parameters.retry_delay = 0
        parameters.socket_timeout = timeout
        parameters.stack_timeout = timeout
        parameters.blocked_connection_timeout = timeout
        with _quiet("pika"):  # pika logs five ERROR lines of its own per refused connection: ours says it once
            pika.BlockingConnection(parameters).close()
        return
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0), retry_on_timeout=False
    )
    try:
        client.ping()
    finally:
        client.close()


def check_database(url: str, timeout: float) -> None:
    """Raise unless the database at ``url`` accepts a connection and a ``SELECT 1`` within about ``timeout`` seconds.

    An SQLite file is always "reachable": it is opened (and made) by the side itself.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    connect_args: dict[str, object] = {}
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        connect_args["connect_timeout"] = max(2, math.ceil(timeout))  # libpq's floor is 2 s
    engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def describe(error: BaseException) -> str:
    """``ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused.``: one line, the
    driver's own error rather than SQLAlchemy's wrapper, never empty (pika's often are)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error) or "; ".join(shown for shown in (str(arg) or repr(arg) for arg in error.args) if shown)
    if not text and error.__cause__ is not None:
        text = describe(error.__cause__)
    text = " ".join(text.split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


@dataclass(frozen=True)
class Service:
    """Something a worker needs to reach: its name (``broker``, ``finance database``), URL and check."""

    name: str
    url: str
    check: Callable[[str, float], None]

    @property
    def shown(self) -> str:
        return redact_url(self.url)


@dataclass
class Unreachable:
    """The services still unreachable when the deadline passed, each with its last error (redacted)."""

    errors: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)
    attempts: int = 0
    waited: float = 0.0

    def message(self, timeout: float) -> str:
        what = "; ".join(f"the {s.name} at {s.shown}: {self.errors[s.name]}" for s in self.services)
        return (
            f"cannot reach {what} (gave up after {self.attempts} attempt(s) in {self.waited:.1f} s; "
            f"DUALWRITE_CONNECT_TIMEOUT_SECONDS is {timeout:g})"
        )


class Stopped(Exception):
    """Raised when a stop signal came while waiting for the services."""


def services_of(broker_url: str, database_urls: dict[str, str]) -> list[Service]:
    """The broker (unless embedded: it lives in this process) and each side's database, in that order."""
    from shared.settings import EMBEDDED

    broker = [] if broker_url == EMBEDDED else [Service("broker", broker_url, check_broker)]
    return broker + [Service(f"{side} database", url, check_database) for side, url in database_urls.items()]


def wait_for_services(
    services: Sequence[Service],
    timeout: float,
    *,
    log: object,
    stop_within: Callable[[float], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Unreachable | None:
    """Check ``services`` until each answered once, for at most ``timeout`` seconds; None when all did.

    Each failed attempt logs a warning (``log.warning``, a structlog logger) with the service, its
    URL (password hidden), the error, the attempt and the seconds left. ``stop_within(seconds)``
    pauses between attempts and says whether a stop signal came meanwhile: then :class:`Stopped`
    is raised. What is still unreachable at the deadline is returned.
    """
    start = clock()
    deadline = start + timeout
    pending = list(services)
    pause = FIRST_PAUSE_SECONDS
    attempt = 0
    while True:
        attempt += 1
        errors: dict[str, str] = {}
        for service in pending:
            budget = max(1.0, min(ATTEMPT_TIMEOUT_SECONDS, deadline - clock()))
            try:
                service.check(service.url, budget)
            except Exception as error:  # refused, timed out, refused our password, unknown host: all "unreachable"
                errors[service.name] = redact_text(describe(error), url_secrets(service.url))
        pending = [service for service in pending if service.name in errors]
        if not pending:
            return None
        left = deadline - clock()
        for service in pending:
            log.warning(  # type: ignore[attr-defined]
                "cannot reach the " + service.name + ("; retrying" if left > 0 else "; giving up"),
                url=service.shown,
                error=errors[service.name],
                attempt=attempt,
                seconds_left=round(max(left, 0.0), 1),
            )
        if left <= 0:
            return Unreachable(errors, pending, attempt, clock() - start)
        wait = min(pause, left)
        pause = min(pause * 2, MAX_PAUSE_SECONDS)
        if stop_within is not None:
            if stop_within(wait):
                raise Stopped()
        else:
            time.sleep(wait)
