"""A side's database going away for a while (a restart, a failover, its connections killed) is an
outage to wait out, not a failure of the message that met it.

**Which errors.** :func:`is_database_unavailable` says whether an exception means "the database
did not answer" rather than "the database refused this": SQLAlchemy marks the first kind
``connection_invalidated`` when it meets it on a pooled connection (and invalidates the whole pool,
so every connection made before is replaced on its next checkout; checked with psycopg 3 for
``terminating connection due to administrator command`` and ``server closed the connection
unexpectedly``). A connection that cannot be made at all (refused, reset, a timeout) is a psycopg
``OperationalError`` with no SQLSTATE; a server shutting down, crashed or starting up answers
SQLSTATE 57P01, 57P02 or 57P03; class 08 is a connection exception. Anything else (a constraint, a
deadlock, a statement timeout, a business rule) is not an outage, and is retried or dead-lettered
as before.

**What waits.** :class:`Availability`, one per side's database, is what the side's consumer
threads know of it: up, or down since when and why. A thread that meets an outage waits for the
database (:meth:`Availability.wait`) holding its message, rather than handing it back to the
broker to spin through its retries: a 30-second restart would burn ``max_retries`` (8, doubling
from 0.5 s: about two minutes) for every message in flight, and dead-letter them all in a longer
one. While threads wait they take no new messages, so the worker stops consuming by itself until
the database is back, then carries on where it was. One waiting thread at a time probes the
database (a connection and ``SELECT 1``), the others sleep until it answers. The outage is logged
once when it starts and once when it ends, never a line per thread per attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import exc

from shared.connectivity import describe
from shared.logging import get_logger
from shared.redaction import redact_text

log = get_logger(__name__)

#: SQLSTATEs of a server that is going away or not there yet: admin_shutdown (a fast shutdown or
#: ``pg_terminate_backend``), crash_shutdown (another backend crashed), cannot_connect_now (starting up).
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})

#: The first pause between two probes of a database that is down; it doubles up to the longest.
FIRST_PROBE_PAUSE_SECONDS = 0.2
LONGEST_PROBE_PAUSE_SECONDS = 2.0


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what it was raised from) means the database could not be reached."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 5:
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, exc.DisconnectionError):
            return True
        original = current.orig if isinstance(current, exc.DBAPIError) else current
        if isinstance(original, psycopg.OperationalError):
            state = original.sqlstate
            if state is None or state.startswith("08") or state in UNAVAILABLE_SQLSTATES:
                return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def describe_outage(error: BaseException) -> str:
    """The driver's message on one line, passwords hidden: what the outage's log line says."""
    return redact_text(describe(error))


class Availability:
    """Whether one side's database answers, as this process last found it, and a wait until it does.

    ``probe`` raises unless the database answers (the side's engine: a connection and ``SELECT 1``).
    """

    def __init__(self, side: str, probe: Callable[[], None]) -> None:
        self.side = side
        self.probe = probe
        self._changed = threading.Condition()
        self._probing = threading.Lock()
        self._released = False
        #: When this process found the database unreachable (monotonic), None while it answers.
        self.down_since: float | None = None
        self.last_error: str | None = None
        #: Outages seen by this process (each logged once).
        self.outages = 0

    @property
    def up(self) -> bool:
        return self.down_since is None

    @property
    def released(self) -> bool:
        """Whether the worker is stopping (:meth:`release`): nobody waits any more."""
        return self._released

    def seconds_down(self) -> float:
        since = self.down_since
        return 0.0 if since is None else max(time.monotonic() - since, 0.0)

    def failed(self, error: BaseException) -> None:
        """A unit of work met the database unreachable: the outage starts (logged once) if it had not."""
        with self._changed:
            self.last_error = describe_outage(error)
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
            self.outages += 1
        log.warning(
            "database unreachable; messages wait for it, none is given up", side=self.side, error=self.last_error
        )

    def answered(self) -> None:
        """The database answered (a unit of work committed, or a probe did): the outage, if any, is over."""
        if self.down_since is None:
            return
        with self._changed:
            if self.down_since is None:
                return
            seconds = self.seconds_down()
            self.down_since = None
            self._changed.notify_all()
        log.info("database reachable again; waiting messages carry on", side=self.side, down_seconds=round(seconds, 1))

    def wait(self, timeout: float) -> bool:
        """Block until the database answers again, at most ``timeout`` seconds; whether it did.

        False at once when the worker is stopping (:meth:`release`). One thread probes at a time,
        with pauses doubling from ``FIRST_PROBE_PAUSE_SECONDS``; the others sleep until it answers.
        """
        deadline = time.monotonic() + timeout
        pause = FIRST_PROBE_PAUSE_SECONDS
        while True:
            if self._released:
                return False
            if self.down_since is None:
                return True
            if self._probing.acquire(blocking=False):
                try:
                    self.probe()
                except Exception as error:  # noqa: BLE001 - any failure to answer: still down
                    self.last_error = describe_outage(error)
                else:
                    self.answered()
                    return True
                finally:
                    self._probing.release()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:  # woken early when another thread finds it back, or the worker stops
                if self.down_since is not None and not self._released:
                    self._changed.wait(min(pause, left))
            pause = min(pause * 2, LONGEST_PROBE_PAUSE_SECONDS)

    def release(self) -> None:
        """The worker stops: waiting threads give up now (their messages go back to the broker as a retry)."""
        with self._changed:
            self._released = True
            self._changed.notify_all()

    def reset(self) -> None:
        """A worker starts (again) on this database: its threads may wait for it."""
        with self._changed:
            self._released = False
