"""Measuring: percentiles, per-report latency from the finance database, CPU and memory from /proc.

Latency of a report = the time its last project cost transaction exists (``posted_at`` of the
integration journal that created it, joined through the journal line and the actual to the
expense id, which is ``<report id>-<line number>``) minus the time the bench published its post
command. Both clocks are this machine's wall clock.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from contracts.fields import TransactionType
from workers.bench.load import report_of_expense
from workers.finance import tables as fin


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it.

    Conservative with few samples: p99 of 30 values is the largest one.
    """
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> "LatencySummary":
        values = [s * 1000 for s in seconds]
        if not values:
            raise ValueError("no latencies to summarise")
        return cls(
            count=len(values),
            p50_ms=round(percentile(values, 50), 1),
            p95_ms=round(percentile(values, 95), 1),
            p99_ms=round(percentile(values, 99), 1),
            max_ms=round(max(values), 1),
            min_ms=round(min(values), 1),
        )


def report_latencies(
    posted: Iterable[tuple[str, float]], published_at: Mapping[str, float], lines_per_report: int
) -> dict[str, float]:
    """Seconds from each report's post to its last project cost transaction.

    ``posted`` holds (expense id, time its project cost transaction was posted) for cost lines;
    only reports in ``published_at`` with all ``lines_per_report`` lines posted are measured.
    """
    last: dict[str, float] = {}
    count: dict[str, int] = {}
    for expense_id, at in posted:
        report_id = report_of_expense(expense_id)
        if report_id not in published_at:
            continue
        last[report_id] = max(at, last.get(report_id, at))
        count[report_id] = count.get(report_id, 0) + 1
    return {
        report_id: last[report_id] - published_at[report_id]
        for report_id in last
        if count[report_id] == lines_per_report
    }


def posted_cost_lines(connection: Connection, report_prefix: str | None = None) -> list[tuple[str, float]]:
    """(expense id, posted_at as a UNIX time) of every project cost transaction (of reports with this id prefix)."""
    lines, journals, transactions = fin.integration_journal_lines.c, fin.integration_journals.c, fin.project_transactions.c
    query = (
        select(lines.expense_id, journals.posted_at)
        .select_from(
            fin.integration_journal_lines.join(fin.integration_journals, journals.journal_id == lines.journal_id).join(
                fin.project_transactions, (transactions.actual_id == lines.actual_id) & (transactions.kind == "cost")
            )
        )
        .where(lines.transaction_type == int(TransactionType.COST), journals.posted_at.is_not(None))
    )
    if report_prefix is not None:
        query = query.where(lines.expense_id.startswith(report_prefix, autoescape=True))
    return [(row.expense_id, _unix(row.posted_at)) for row in connection.execute(query)]


def cost_transactions_of(connection: Connection, report_id: str) -> int:
    """How many project cost transactions a report's lines have so far."""
    lines, transactions = fin.integration_journal_lines.c, fin.project_transactions.c
    return connection.scalar(
        select(func.count())
        .select_from(fin.project_transactions.join(fin.integration_journal_lines, lines.actual_id == transactions.actual_id))
        .where(transactions.kind == "cost", lines.expense_id.startswith(f"{report_id}-", autoescape=True))
    ) or 0


def cost_transaction_count(connection: Connection) -> int:
    return connection.scalar(select(func.count()).select_from(fin.project_transactions).where(fin.project_transactions.c.kind == "cost")) or 0


def last_posted_at(connection: Connection) -> float | None:
    value = connection.scalar(select(func.max(fin.integration_journals.c.posted_at)))
    return _unix(value) if value is not None else None


def _unix(value: datetime) -> float:
    return value.timestamp()


# -- CPU ----------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_cpu_ticks(stat_text: str) -> int:
    """User plus system time of a process, in clock ticks, from /proc/<pid>/stat."""
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _cpu_seconds(pids: Iterable[int], proc: Path) -> float:
    ticks = 0
    for pid in pids:
        try:
            ticks += stat_cpu_ticks((proc / str(pid) / "stat").read_text())
        except (OSError, ValueError):
            continue  # gone meanwhile
    return ticks / CLOCK_TICKS


def _matching(proc: Path, wanted: str, *, in_command: bool) -> list[int]:
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cmdline").read_bytes() if in_command else (entry / "comm").read_bytes()
        except OSError:
            continue
        if wanted.encode() in text:
            found.append(int(entry.name))
    return found


#: The broker servers whose CPU a run counts, by the key of their figure: their process name (comm).
BROKER_SERVERS = {"redis": "redis-server", "rabbitmq": "beam.smp"}


def cpu_snapshot(worker_pids: Iterable[int], proc: Path = Path("/proc"), *, broker: str = "redis") -> dict[str, float]:
    """CPU seconds used so far by the worker processes (and their children), by this process
    (publishing and polling), by the PostgreSQL backends serving the bench databases, and by the
    broker's server, ``broker`` naming it (``redis``: redis-server, ``rabbitmq``: beam.smp; all of
    it: other clients and vhosts too)."""
    workers = [pid for top in worker_pids for pid in (top, *descendants(top, proc))]
    return {
        "workers": _cpu_seconds(workers, proc),
        "bench": _cpu_seconds([os.getpid()], proc),
        "postgres": _cpu_seconds(_matching(proc, "dualwrite_bench_", in_command=True), proc),
        broker: _cpu_seconds(_matching(proc, BROKER_SERVERS[broker], in_command=False), proc),
    }


def cpu_used(before: dict[str, float], after: dict[str, float], lines: int, cpus: int) -> dict[str, float]:
    """CPU seconds per part between two snapshots, per 1,000 lines, and the lines/s ``cpus`` idle CPUs could carry."""
    used = {part: round(max(after[part] - before.get(part, 0.0), 0.0), 2) for part in after}
    total = round(sum(used.values()), 2)
    return {
        **used,
        "total": total,
        "per_1000_lines": round(total / lines * 1000, 2) if lines else 0.0,
        "capacity_lines_per_second": round(lines / total * cpus, 0) if total else 0.0,
    }


# -- memory -----------------------------------------------------------------------------------


def status_kib(status_text: str, field_name: str) -> int | None:
    """A ``Vm...:  N kB`` line of /proc/<pid>/status, in KiB; None if absent (a kernel thread, a zombie)."""
    for line in status_text.splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return None


def vm_hwm_kib(status_text: str) -> int | None:
    """The ``VmHWM`` (peak resident set) line of /proc/<pid>/status, in KiB; None if absent."""
    return status_kib(status_text, "VmHWM")


def vm_rss_kib(status_text: str) -> int | None:
    """The ``VmRSS`` (resident set now) line of /proc/<pid>/status, in KiB; None if absent."""
    return status_kib(status_text, "VmRSS")


def parent_pid(stat_text: str) -> int:
    """The parent pid from /proc/<pid>/stat (the command name in parentheses may hold spaces)."""
    return int(stat_text[stat_text.rindex(")") + 2 :].split()[1])


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), found by scanning /proc."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = parent_pid((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in sorted(children.get(todo.pop(), [])):
            found.append(child)
            todo.append(child)
    return found


@dataclass(frozen=True)
class ProcessMemory:
    role: str
    pid: int
    peak_kib: int
    command: str

    @property
    def peak_mb(self) -> float:
        """Peak resident memory in MB (10^6 bytes)."""
        return round(self.peak_kib * 1024 / 1_000_000, 1)

    def as_json(self) -> dict[str, Any]:
        return {"role": self.role, "pid": self.pid, "peak_mb": self.peak_mb, "peak_kib": self.peak_kib, "command": self.command}


def process_memory(role: str, pid: int, proc: Path = Path("/proc")) -> list[ProcessMemory]:
    """Peak memory of a worker process and of every process it started (``--processes`` > 1)."""
    found = []
    for number, each in enumerate([pid, *descendants(pid, proc)]):
        try:
            peak = vm_hwm_kib((proc / str(each) / "status").read_text())
            command = (proc / str(each) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if peak is not None:
            found.append(ProcessMemory(_role(role, number, each, command), each, peak, command))
    if len(found) > 1:  # --processes > 1: the first one only supervises
        found[0] = ProcessMemory(f"{role} supervisor", found[0].pid, found[0].peak_kib, found[0].command)
    return found


def worker_processes(workers: Iterable[tuple[str, int]], proc: Path = Path("/proc")) -> list[tuple[str, int]]:
    """(role, pid) of every worker process and each process it started, named as :func:`process_memory` names them."""
    return [(m.role, m.pid) for role, pid in workers for m in process_memory(role, pid, proc)]


def _role(role: str, number: int, pid: int, command: str) -> str:
    if number == 0:
        return role
    if "resource_tracker" in command:
        return f"{role} resource tracker {pid}"
    return f"{role} process {pid}"


# -- resident memory through a phase -----------------------------------------------------------

#: The points of a run the summary shows resident memory at, as fractions of its duration.
RSS_POINTS = (0.1, 0.5, 0.9)


def value_at(times: Sequence[float], values: Sequence[int | None], moment: float) -> int | None:
    """The sample taken nearest to ``moment`` (the earlier one on a tie) that has a value."""
    best: tuple[float, int] | None = None
    for at, value in zip(times, values, strict=True):
        if value is None:
            continue
        distance = abs(at - moment)
        if best is None or distance < best[0]:
            best = (distance, value)
    return None if best is None else best[1]


@dataclass
class RssSamples:
    """VmRSS of every worker process, sampled every ``interval`` s through a phase (KiB; None: not readable)."""

    interval: float
    times: list[float] = field(default_factory=list)
    processes: dict[str, list[int | None]] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def add(self, at: float, rss: Mapping[str, int | None]) -> None:
        self.times.append(round(at, 3))
        for role in [*rss, *(role for role in self.processes if role not in rss)]:  # first seen first
            values = self.processes.setdefault(role, [None] * (len(self.times) - 1))
            values.append(rss.get(role))

    @property
    def duration(self) -> float:
        return self.times[-1] if self.times else 0.0

    def summary(self) -> dict[str, dict[str, float | None]]:
        """Per process: MB at 10 %, 50 % and 90 % of the phase, and the largest sample."""
        shown = {}
        for role, values in self.processes.items():
            at = {f"p{round(point * 100)}_mb": _mb(value_at(self.times, values, point * self.duration)) for point in RSS_POINTS}
            known = [v for v in values if v is not None]
            shown[role] = {**at, "peak_mb": _mb(max(known)) if known else None}
        return shown

    def as_json(self) -> dict[str, object]:
        return {
            "interval_seconds": self.interval,
            "samples": len(self.times),
            "seconds": self.duration,
            "by_process": self.summary(),
            "pids": self.pids,
            "times": self.times,
            "rss_kib": self.processes,
        }


def _mb(kib: int | None) -> float | None:
    return None if kib is None else round(kib * 1024 / 1_000_000, 1)


def read_rss(processes: Iterable[tuple[str, int]], proc: Path = Path("/proc")) -> dict[str, int | None]:
    rss: dict[str, int | None] = {}
    for role, pid in processes:
        try:
            rss[role] = vm_rss_kib((proc / str(pid) / "status").read_text())
        except OSError:
            rss[role] = None  # gone meanwhile
    return rss


class RssSampler:
    """Samples every worker process's VmRSS every ``interval`` s in a thread, from :meth:`start` to :meth:`stop`."""

    def __init__(self, processes: list[tuple[str, int]], interval: float = 1.0, proc: Path = Path("/proc")) -> None:
        self.processes = processes
        self.proc = proc
        self.samples = RssSamples(interval, pids=dict(processes))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss-sampler", daemon=True)
        self._start = 0.0

    def start(self) -> "RssSampler":
        self._start = time.monotonic()
        self._thread.start()
        return self

    def _sample(self) -> None:
        self.samples.add(time.monotonic() - self._start, read_rss(self.processes, self.proc))

    def _run(self) -> None:
        next_at = self._start
        while True:
            self._sample()
            next_at += self.samples.interval
            if self._stop.wait(max(next_at - time.monotonic(), 0.0)):
                return

    def stop(self) -> RssSamples:
        """Stop, with a last sample at the end of the phase."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=10)
            self._sample()
        return self.samples


# -- idle ----------------------------------------------------------------------------------------


def process_cpu_ticks(processes: Iterable[tuple[str, int]], proc: Path = Path("/proc")) -> dict[str, int | None]:
    """User plus system clock ticks of each process so far (None: gone)."""
    ticks: dict[str, int | None] = {}
    for role, pid in processes:
        try:
            ticks[role] = stat_cpu_ticks((proc / str(pid) / "stat").read_text())
        except (OSError, ValueError):
            ticks[role] = None
    return ticks


def cpu_percent(before: Mapping[str, int | None], after: Mapping[str, int | None], seconds: float, ticks_per_second: int = CLOCK_TICKS) -> dict[str, float | None]:
    """Each process's CPU between two tick readings, as % of one core over ``seconds`` of wall time."""
    shown: dict[str, float | None] = {}
    for role, start in before.items():
        end = after.get(role)
        if start is None or end is None or seconds <= 0:
            shown[role] = None
        else:
            shown[role] = round((end - start) / ticks_per_second / seconds * 100, 2)
    return shown
