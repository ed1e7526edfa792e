"""Measuring: percentiles, per-report latency from the finance database, peak memory from /proc.

Latency of a report = the time its last project cost transaction exists (``posted_at`` of the
integration journal that created it, joined through the journal line and the actual to the
expense id, which is ``<report id>-<line number>``) minus the time the bench published its post
command. Both clocks are this machine's wall clock.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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


def cpu_snapshot(worker_pids: Iterable[int], proc: Path = Path("/proc")) -> dict[str, float]:
    """CPU seconds used so far by the worker processes (and their children), by this process
    (publishing and polling), by the PostgreSQL backends serving the bench databases, and by the
    Redis server (all of it: other clients too)."""
    workers = [pid for top in worker_pids for pid in (top, *descendants(top, proc))]
    return {
        "workers": _cpu_seconds(workers, proc),
        "bench": _cpu_seconds([os.getpid()], proc),
        "postgres": _cpu_seconds(_matching(proc, "dualwrite_bench_", in_command=True), proc),
        "redis": _cpu_seconds(_matching(proc, "redis-server", in_command=False), proc),
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


def vm_hwm_kib(status_text: str) -> int | None:
    """The ``VmHWM`` (peak resident set) line of /proc/<pid>/status, in KiB; None if absent."""
    for line in status_text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


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


def _role(role: str, number: int, pid: int, command: str) -> str:
    if number == 0:
        return role
    if "resource_tracker" in command:
        return f"{role} resource tracker {pid}"
    return f"{role} process {pid}"
