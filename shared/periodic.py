"""Background work on a timer, inside a worker process (outbox relay, Import from staging)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.broker_outage import is_broker_unavailable
from shared.database_outage import describe_outage, is_database_unavailable
from shared.logging import get_logger

log = get_logger(__name__)


class PeriodicTask:
    """Calls ``work`` every ``interval`` seconds in a daemon thread until stopped.

    A failing run is logged and the next run happens as usual: the work must be safe to repeat.
    A run that fails because the database is unreachable (``shared.database_outage``) is the start
    of an outage: logged once, with the error, then the runs go on at the same interval without a
    line each (each is one refused connection), and the first run that succeeds logs the end of it
    and does what accumulated meanwhile (the outbox relay: what was committed and not sent).
    """

    def __init__(
        self, name: str, interval: float, work: Callable[[], object], *, final: Callable[[], object] | None = None
    ) -> None:
        self.name = name
        self.interval = interval
        self.work = work
        #: What the last run, on stop, does instead of ``work`` (the outbox relay: send everything left).
        self.final = final
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: When the runs began failing for want of the database (monotonic), None while they succeed.
        self.outage_since: float | None = None

    @property
    def alive(self) -> bool:
        """Whether its thread runs (a failing run, an outage among them, never ends it)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, *, final_run: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if final_run and not self.run_once(self.final or self.work) and self.outage_since is not None:
            log.warning("periodic task's last run could not reach its database; the next start does it", task=self.name)

    def run_once(self, work: Callable[[], object] | None = None) -> bool:
        """One run; whether it succeeded."""
        try:
            (work or self.work)()
        except Exception as error:
            if is_broker_unavailable(error) and not is_database_unavailable(error):
                # The outbox relay meeting a broker outage: logged once where it was met
                # (shared.broker_outage); the rows wait in the outbox for the next run.
                return False
            if not is_database_unavailable(error):
                log.exception("periodic task failed; it runs again at the next interval", task=self.name)
            elif self.outage_since is None:
                self.outage_since = time.monotonic()
                log.warning(
                    "periodic task waits for its database; it runs again every interval until it answers",
                    task=self.name,
                    error=describe_outage(error),
                )
            return False
        if self.outage_since is not None:
            down = time.monotonic() - self.outage_since
            self.outage_since = None
            log.info("periodic task runs again: its database answers", task=self.name, down_seconds=round(down, 1))
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
