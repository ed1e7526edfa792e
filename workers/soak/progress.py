"""Which documents reached the end of the flow, and when each fault's documents had all recovered.

A report is **done** when each of its lines has a project cost transaction in finance (the last
hop). A background thread asks the finance database every ``POLL_SECONDS`` for the reports past
the **watermark** (the highest N such that reports 1..N are all done) and moves it on.

**Time to recover** of a fault = from its injection until every report whose post command was
published before the injection is done: the documents in flight when the fault struck (and
everything ahead of them) went all the way through. It includes the ordinary latency of the
flow (a report takes a few seconds end to end under load) and whatever a later fault added to
the same documents; a fault whose documents never finish has no recovery time (``None``).

The thread tolerates the faults it watches: a query that fails (PostgreSQL restarting, its
connection terminated) is tried again at the next poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select

from contracts.fields import TransactionType
from workers.finance import tables as fin

POLL_SECONDS = 0.5


def report_id(prefix: str, number: int) -> str:
    return f"{prefix}{number:06d}"


def report_number(prefix: str, report: str) -> int:
    return int(report[len(prefix):])


@dataclass
class Watermark:
    """Reports 1..``through`` are done; ``done_at`` holds when each report was first seen done. Pure."""

    lines_per_report: int
    through: int = 0
    done_at: dict[int, float] = field(default_factory=dict)

    def update(self, counts: dict[int, int], now: float) -> int:
        """Take per-report project cost counts (reports past the watermark); the new watermark."""
        for number, count in counts.items():
            if count >= self.lines_per_report and number not in self.done_at:
                self.done_at[number] = now
        while self.through + 1 in self.done_at:
            self.through += 1
        return self.through


class DoneReports:
    """The watermark, kept up to date by a thread; callbacks see each new value."""

    def __init__(self, engine: Engine, prefix: str, lines_per_report: int, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.prefix = prefix
        self.mark = Watermark(lines_per_report)
        self.clock = clock
        self.errors = 0
        self.last_error: str | None = None
        self.listeners: list[Callable[[int, float], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-done-reports", daemon=True)
        self._lock = threading.Lock()

    @property
    def through(self) -> int:
        return self.mark.through

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=30)

    def poll(self) -> int:
        """One look at the finance database (also called directly, e.g. at the end)."""
        counts = self._counts()
        now = self.clock()
        with self._lock:
            through = self.mark.update(counts, now)
            for listener in self.listeners:
                listener(through, now)
        return through

    def _counts(self) -> dict[int, int]:
        lines, transactions = fin.integration_journal_lines.c, fin.project_transactions.c
        report = func.split_part(lines.expense_id, "-", 1).label("report")
        query = (
            select(report, func.count())
            .select_from(fin.project_transactions.join(fin.integration_journal_lines, lines.actual_id == transactions.actual_id))
            .where(
                transactions.kind == "cost",
                lines.transaction_type == int(TransactionType.COST),
                lines.expense_id >= report_id(self.prefix, self.mark.through + 1),
                lines.expense_id.startswith(self.prefix, autoescape=True),
            )
            .group_by(report)
        )
        with self.engine.connect() as connection:
            return {report_number(self.prefix, row[0]): int(row[1]) for row in connection.execute(query)}

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception as error:  # noqa: BLE001 - a fault it watches (restart, killed connection): next poll
                self.errors += 1
                self.last_error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
