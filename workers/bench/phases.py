"""The two timed phases: throughput (every report posted at once) and light load (one at a time)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workers.bench import measure
from workers.bench.load import BenchReport
from workers.bench.measure import LatencySummary
from workers.bench.prepare import Pipeline, post, post_report_messages
from workers.bench.services import BenchFailed
from workers.reconcile import CompanyReconciliation, reconcile

#: How often the throughput phase looks at the finance database while it waits for the end. Each
#: look counts the project cost transactions, a query the PostgreSQL CPU figure includes: at 0.2 s
#: it costs a few tenths of a CPU-second over a 25 s run, and the end is seen within 0.2 s (<1 %).
POLL_SECONDS = 0.2
#: How often the light phase looks for one report's project cost.
LIGHT_POLL_SECONDS = 0.01


@dataclass
class ThroughputResult:
    reports: int
    lines: int
    messages: int
    publish_seconds: float
    #: First post published -> reconcile first ok (the headline figure).
    seconds: float
    #: First post published -> the last integration journal posted (the database's own clock).
    pipeline_seconds: float
    latency: LatencySummary
    reconciliation: list[CompanyReconciliation]
    #: CPU seconds the phase used, per part (see measure.cpu_used).
    cpu: dict[str, float]

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "reports": self.reports,
            "expense_lines": self.lines,
            "post_messages": self.messages,
            "publish_seconds": round(self.publish_seconds, 3),
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.lines_per_second, 1),
            "pipeline_seconds": round(self.pipeline_seconds, 3),
            "pipeline_lines_per_second": round(self.lines / self.pipeline_seconds, 1),
            "latency_ms": vars(self.latency),
            "cpu_seconds": self.cpu,
        }


@dataclass
class LightResult:
    reports: int
    latency: LatencySummary

    def as_json(self) -> dict[str, Any]:
        return {"reports": self.reports, "latency_ms": vars(self.latency)}


def reconciled(pipeline: Pipeline, expected_lines: int) -> list[CompanyReconciliation] | None:
    """Reconcile's report when every company is ok and the posted project lines number ``expected_lines``."""
    companies = reconcile(pipeline.database("finance"), pipeline.database("dataverse"))
    lines = sum(c.counts["posted_project_expense_lines"] for c in companies)
    if companies and all(c.ok for c in companies) and lines == expected_lines:
        return companies
    return None


def throughput(
    pipeline: Pipeline,
    reports: list[BenchReport],
    lines: int,
    per_message: int,
    *,
    lines_before: int = 0,
    broker_cpu: str = "redis",
    started: Callable[[], None] | None = None,
    ended: Callable[[], None] | None = None,
) -> ThroughputResult:
    """Publish every post command as fast as possible, then poll until reconcile is ok with every line.

    ``broker_cpu`` names the broker server whose CPU counts (measure.BROKER_SERVERS); ``started``
    runs just before the first post and ``ended`` as soon as reconcile is ok (sampling, profiling).
    """
    messages = post_report_messages(reports, per_message)
    expected = lines_before + len(reports) * lines
    published_at: dict[str, float] = {}
    finance = pipeline.database("finance").engine
    workers = [process.pid for process in pipeline.services.processes]
    if started is not None:
        started()
    cpu_before = measure.cpu_snapshot(workers, broker=broker_cpu)
    first = time.time()
    for legal_entity, group in messages:
        at = time.time()
        post(pipeline, legal_entity, group)
        for report in group:
            published_at[report.report_id] = at
    published = time.time()
    pipeline.progress(f"throughput: {len(messages):,} post messages published in {published - first:.2f} s; waiting for reconcile ok")
    deadline = first + pipeline.timeout
    last_shown = time.monotonic()
    while True:
        with finance.connect() as connection:
            done = measure.cost_transaction_count(connection)
        if done >= expected:
            companies = reconciled(pipeline, expected)
            if companies is not None:
                end = time.time()
                cpu_after = measure.cpu_snapshot(workers, broker=broker_cpu)
                if ended is not None:
                    ended()
                break
        pipeline.check()
        if time.time() > deadline:
            raise BenchFailed(f"throughput: {done:,} of {expected:,} project cost transactions after {pipeline.timeout:g} s (--timeout)")
        if time.monotonic() - last_shown >= 2:
            pipeline.progress(f"  project cost transactions: {done - lines_before:,}/{expected - lines_before:,}")
            last_shown = time.monotonic()
        time.sleep(POLL_SECONDS)
    with finance.connect() as connection:
        posted = measure.posted_cost_lines(connection)
        last = measure.last_posted_at(connection) or end
    latencies = measure.report_latencies(posted, published_at, lines)
    if len(latencies) != len(reports):
        raise BenchFailed(f"throughput: latency known for {len(latencies)} of {len(reports)} reports")
    return ThroughputResult(
        reports=len(reports),
        lines=len(reports) * lines,
        messages=len(messages),
        publish_seconds=published - first,
        seconds=end - first,
        pipeline_seconds=last - first,
        latency=LatencySummary.of(latencies.values()),
        reconciliation=companies,
        cpu=measure.cpu_used(cpu_before, cpu_after, len(reports) * lines, os.cpu_count() or 1),
    )


def light_load(pipeline: Pipeline, reports: list[BenchReport], lines: int, *, lines_before: int) -> tuple[LightResult, list[CompanyReconciliation]]:
    """Post the reports one at a time, each once the previous one reached project cost."""
    finance = pipeline.database("finance").engine
    published_at: dict[str, float] = {}
    last_shown = time.monotonic()
    for number, report in enumerate(reports, start=1):
        published_at[report.report_id] = time.time()
        post(pipeline, report.legal_entity, [report])
        deadline = time.monotonic() + pipeline.timeout
        while True:
            with finance.connect() as connection:
                if measure.cost_transactions_of(connection, report.report_id) >= lines:
                    break
            pipeline.check(dead_letters_every=2.0)
            if time.monotonic() > deadline:
                raise BenchFailed(f"light load: report {report.report_id} did not reach project cost within {pipeline.timeout:g} s")
            time.sleep(LIGHT_POLL_SECONDS)
        if time.monotonic() - last_shown >= 2:
            pipeline.progress(f"  light load: {number}/{len(reports)} reports at project cost")
            last_shown = time.monotonic()
    with finance.connect() as connection:
        posted = [row for report in reports for row in measure.posted_cost_lines(connection, f"{report.report_id}-")]
    latencies = measure.report_latencies(posted, published_at, lines)
    if len(latencies) != len(reports):
        raise BenchFailed(f"light load: latency known for {len(latencies)} of {len(reports)} reports")
    expected = lines_before + len(reports) * lines
    pipeline.wait("light load: reconcile ok", lambda: int(reconciled(pipeline, expected) is not None), 1, interval=0.1)
    companies = reconciled(pipeline, expected) or []
    return LightResult(len(reports), LatencySummary.of(latencies.values())), companies


@dataclass
class IdleResult:
    seconds: float
    #: Each worker process's CPU over the phase, as % of one core (None: it went away).
    processes: dict[str, float | None]
    #: The servers' CPU over the phase, as % of one core: PostgreSQL (bench databases), the broker.
    servers: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2), "cpu_percent_of_one_core": self.processes, "servers_cpu_percent_of_one_core": self.servers}


def idle_phase(pipeline: Pipeline, seconds: float, processes: list[tuple[str, int]], *, broker_cpu: str) -> IdleResult:
    """With nothing to do for ``seconds``, each worker process's CPU (utime + stime from /proc/<pid>/stat)."""
    before = measure.process_cpu_ticks(processes)
    servers_before = measure.cpu_snapshot([], broker=broker_cpu)
    start = time.monotonic()
    deadline = start + seconds
    while (left := deadline - time.monotonic()) > 0:
        pipeline.services.check_alive()
        time.sleep(min(left, 0.5))
    after = measure.process_cpu_ticks(processes)
    servers_after = measure.cpu_snapshot([], broker=broker_cpu)
    elapsed = time.monotonic() - start
    servers = {
        part: round(max(servers_after[part] - servers_before[part], 0.0) / elapsed * 100, 2)
        for part in ("postgres", broker_cpu)
    }
    return IdleResult(elapsed, measure.cpu_percent(before, after, elapsed), servers)
