"""Background work on a timer, inside a worker process (outbox relay, Import from staging)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from shared.logging import get_logger

log = get_logger(__name__)


class PeriodicTask:
    """Calls ``work`` every ``interval`` seconds in a daemon thread until stopped.

    A failing run is logged and the next run happens as usual: the work must be safe to repeat.
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

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, *, final_run: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        if final_run:
            self.run_once(self.final or self.work)

    def run_once(self, work: Callable[[], object] | None = None) -> None:
        try:
            (work or self.work)()
        except Exception:
            log.exception("periodic task failed; it runs again at the next interval", task=self.name)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
