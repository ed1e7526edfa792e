"""One soak run, from private servers to their removal.

1. Private servers: a PostgreSQL cluster and Redis (AOF, fsync always) or a RabbitMQ node.
2. The bench's set-up on them: three databases migrated, the broker prepared, the workers started
   (``--processes`` per side, 2 by default, so supervisors are exercised), the periodic repair
   (``dualwrite reconcile --repair --every``) started as compose.yaml runs it, the finance set-up,
   categories and projects loaded, every report created, submitted and approved (untimed).
3. The soak: the post commands go out in waves, about one a second, over ``--duration``; the
   faults strike at their planned moments (``workers.soak.schedule``), one at a time. A worker
   that exits without being killed is started again (and reported). A thread follows which
   reports reached project cost (``workers.soak.progress``), which gives each fault its time to
   recover.
4. The drain: until every document reached project cost, or ``--timeout`` after the last post.
   Then the pipeline must go idle (nothing queued, in flight or unsent), so a late double shows.
5. The check (``workers.soak.check``) and the table (``workers.soak.report``).

Whatever happens, worker processes are stopped and the private servers removed.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.catalog import default_registry
from contracts.envelope import Side
from shared.broker import make_broker
from shared.database import make_engine
from shared.settings import Settings
from shared.signatures import key_ring
from workers.bench import load
from workers.bench.prepare import Pipeline, load_setup, prepare_reports
from workers.bench.services import WorkerProcess
from workers.finance.expense_report_handlers import report_correlation
from workers.reconcile import reconcile
from workers.runtime import SPECS
from workers.soak import check
from workers.soak.faults import KILL_WAIT_SECONDS, InjectedFault, Injector
from workers.soak.options import SoakOptions
from workers.soak.progress import DoneReports, report_number
from workers.soak.report import SoakResult, fault_rows
from workers.soak.schedule import SIDES, PlannedFault, plan
from workers.soak.servers import PrivateServers, SoakServices, bench_options, soak_broker
from workers.upstream import publish

PREFIX = "S"
#: Seconds between two waves of post commands.
WAVE_SECONDS = 1.0
#: How often the main loop looks at the clock, the workers and the plan.
TICK_SECONDS = 0.1
#: How long one post command may keep failing (the broker restarting) before the run gives up.
PUBLISH_DEADLINE = 180.0
#: The periodic repair the soak runs beside the workers, as compose.yaml's ``repair`` service:
#: every REPAIR_EVERY seconds, parts sent LOST_AFTER seconds ago and never applied are sent again.
REPAIR_EVERY, LOST_AFTER = 5.0, 20.0
#: The pipeline must be idle (nothing queued, in flight or unsent) within this long after the last document is done.
IDLE_DEADLINE = 120.0


class SoakFailed(Exception):
    """The soak could not run to its check (the message says why)."""


def waves(count: int, duration: float) -> list[tuple[float, int, int]]:
    """(seconds after the start, first report number, last report number) of each wave of posts. Pure."""
    total = max(1, min(count, int(duration / WAVE_SECONDS)))
    cuts = [round(count * index / total) for index in range(total + 1)]
    return [(duration * index / total, cuts[index] + 1, cuts[index + 1]) for index in range(total) if cuts[index + 1] > cuts[index]]


def run_soak(options: SoakOptions, command: str, progress: Callable[[str], None]) -> SoakResult:
    options.check()
    workdir = Path(tempfile.mkdtemp(prefix="dualwrite-soak-"))
    servers = PrivateServers(options.broker, progress)
    services: SoakServices | None = None
    finished = False
    try:
        servers.start()
        bench = bench_options(options, servers)
        services = SoakServices(bench, workdir, progress, soak_broker(bench, servers))
        result = Soak(options, command, servers, services, progress).run()
        finished = True
        return result
    finally:
        interrupts = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            progress("cleaning up: stopping worker processes, removing the private servers")
            if services is not None:
                for problem in services.clean_up():
                    progress(f"clean-up: {problem}")
            for problem in servers.close():
                progress(f"clean-up: {problem}")
            if services is not None and services.started_any and (options.keep or not finished):
                progress(f"worker logs kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        finally:
            for signum, handler in interrupts.items():
                signal.signal(signum, handler)


class Soak:
    def __init__(self, options: SoakOptions, command: str, servers: PrivateServers, services: SoakServices, progress: Callable[[str], None]) -> None:
        self.options = options
        self.command = command
        self.servers = servers
        self.services = services
        self.progress = progress
        self.faults: list[InjectedFault] = []
        self.unexpected_exits: list[dict[str, Any]] = []
        self.published_at: dict[str, float] = {}
        self.posted = 0
        self.next_wave = 0
        self.start = 0.0
        self.repair: WorkerProcess | None = None
        self.repair_starts = 0

    # -- set-up -----------------------------------------------------------------------------------

    def run(self) -> SoakResult:
        options, services, progress = self.options, self.services, self.progress
        services.check_reachable()
        services.claim_server()
        prepared = services.prepare_broker()
        services.recreate_databases({side: SPECS[Side(side)] for side in SIDES})
        progress(f"fresh databases on the private cluster; {prepared}")
        for side in SIDES:
            process = services.start_worker(side)
            progress(f"started {side} worker: pid {process.pid}, {options.processes} process(es) x {options.threads} threads")
        self.start_repair()
        settings = Settings(broker_url=services.broker.url, keys_dir=services.keys_dir)
        broker = make_broker(settings)
        pipeline = Pipeline(services, broker, default_registry(), key_ring(settings), timeout=options.timeout, progress=progress)
        done: DoneReports | None = None
        finance_engine = None
        try:
            companies = load.companies(options.legal_entities)
            projects = {c.legal_entity: load.projects(c, options.projects) for c in companies}
            load_setup(pipeline, companies, projects)
            reports = load.generate_reports(companies, projects, options.reports, options.lines_per_report, prefix=PREFIX, seed=options.seed)
            progress(f"preparing {len(reports):,} reports ({options.lines_per_report} lines each): create, submit, approve (untimed)")
            prepare_reports(pipeline, reports, options.lines_per_report)
            pipeline.wait_idle("pipeline idle before the soak")

            finance_engine = make_engine(services.options.database_url("finance"), pool_size=1)
            done = DoneReports(finance_engine, PREFIX, options.lines_per_report)
            done.listeners.append(self._recovered)
            injector = Injector(
                self.servers, services, services.broker.url, lambda names: self._ready_counts(pipeline, names), progress,
                messages_per_loss=options.messages_per_loss,
            )
            planned = plan(options.fault_counts(), options.duration, options.seed)
            progress(
                f"soak: {len(reports):,} reports ({options.expected_lines:,} lines) posted over {options.duration:g} s; "
                f"{len(planned)} faults planned (seed {options.seed}): "
                + ", ".join(f"{n} {kind}" for kind, n in options.fault_counts().items() if n)
            )
            done.start()
            posting = self.soak(pipeline, reports, planned, injector, done)
            drain_start = time.time()
            finished = self.drain(done, len(reports))
            drained = time.time() - drain_start
            idle = self.wait_idle(pipeline) if finished else False
            done.stop()
            end = time.time()
            result = self.check(reports, projects, finished, end, done)
            result.timings = {
                "posting_seconds": round(posting, 1),
                "drain_seconds": round(drained, 1),
                "total_seconds": round(end - self.start, 1),
            }
            if finished and not idle:
                result.notes.append(f"the pipeline was not idle within {IDLE_DEADLINE:g} s of the last document: a late double may not show")
            if done.errors:
                result.notes.append(
                    f"the soak's own progress reads were cut {done.errors} time(s) by the database faults and tried again (last: {done.last_error})"
                )
            return result
        finally:
            if done is not None:
                done.stop()
            if finance_engine is not None:
                finance_engine.dispose()
            pipeline.close()
            broker.close()

    def start_repair(self) -> None:
        """The periodic repair, as compose.yaml's ``repair`` service runs it, with a short bound for a soak."""
        self.repair_starts += 1
        command = [
            sys.executable, "-m", "workers", "reconcile", "--repair", "--every", str(REPAIR_EVERY), "--older-than", str(LOST_AFTER),
            "--as", "dualwrite-soak",
        ]
        process = WorkerProcess("repair", command, self.services.worker_env(), self.services.workdir / f"repair-{self.repair_starts}.log")
        self.services.processes.append(process)
        self.repair = process

    # -- the soak ---------------------------------------------------------------------------------

    def soak(self, pipeline: Pipeline, reports: list[load.BenchReport], planned: list[PlannedFault], injector: Injector, done: DoneReports) -> float:
        """Post in waves and inject the faults on time; the seconds it took."""
        schedule = waves(len(reports), self.options.duration)
        next_fault = 0
        self.start = time.time()
        last_shown = 0.0

        def post_due() -> bool:
            """Publish the waves whose time has come; whether there was one."""
            posted = False
            while self.next_wave < len(schedule) and schedule[self.next_wave][0] <= time.time() - self.start:
                _, first, last = schedule[self.next_wave]
                for report in reports[first - 1 : last]:
                    self.post(pipeline, report)
                self.next_wave += 1
                posted = True
            return posted

        injector.while_waiting = post_due  # a fault that waits for traffic keeps the posts going
        while self.next_wave < len(schedule) or next_fault < len(planned):
            now = time.time() - self.start
            if post_due():
                continue
            if next_fault < len(planned) and planned[next_fault].at <= now:
                fault = planned[next_fault]
                if injector.ready(fault) or now - fault.at >= KILL_WAIT_SECONDS:
                    self.inject(injector, fault)
                    next_fault += 1
                    continue
            self.supervise()
            if now - last_shown >= 5:
                progress = f"  +{now:5.0f} s: {self.posted:,}/{len(reports):,} reports posted, {done.through:,} done; faults {next_fault}/{len(planned)}"
                self.progress(progress)
                last_shown = now
            time.sleep(TICK_SECONDS)
        return time.time() - self.start

    def post(self, pipeline: Pipeline, report: load.BenchReport) -> None:
        """One post command, tried again with the same message id while the broker is away (the inbox applies it once)."""
        message_id = uuid.uuid4()
        deadline = time.monotonic() + PUBLISH_DEADLINE
        while True:
            try:
                publish(
                    pipeline.broker, pipeline.registry, "post_expense_reports", {"rows": [{"report_id": report.report_id}]},
                    ring=pipeline.ring, correlation_id=report_correlation(report.legal_entity, report.report_id),
                    legal_entity=report.legal_entity, message_id=message_id,
                )
                break
            except Exception as error:  # noqa: BLE001 - the broker restarting: try again
                if time.monotonic() >= deadline:
                    raise SoakFailed(f"could not publish the post of {report.report_id} for {PUBLISH_DEADLINE:g} s: {error}") from None
                time.sleep(0.5)
        self.published_at[report.report_id] = time.time()
        self.posted += 1

    def inject(self, injector: Injector, fault: PlannedFault) -> None:
        now = time.time()
        record = InjectedFault(fault, injected_at=now, offset=now - self.start, reports_before=self.posted)
        injector.inject(fault, record)
        # Followed for its recovery once injected: a restart's time down counts in its time to recover.
        self.faults.append(record)
        where = f" {fault.target}" if fault.target else ""
        if record.error:
            self.progress(f"fault #{fault.number} {fault.kind}{where} at +{record.offset:.1f} s FAILED to inject: {record.error}")
        else:
            self.progress(f"fault #{fault.number} {fault.kind}{where} at +{record.offset:.1f} s: {record.detail} ({record.took:.1f} s)")

    def _recovered(self, through: int, now: float) -> None:
        """Progress listener: a fault has recovered once every report posted before it is done."""
        for fault in list(self.faults):
            if fault.recovered_at is None and fault.error is None and fault.reports_before <= through:
                fault.recovered_at = now

    def supervise(self) -> None:
        """Start again a top-level worker (or the periodic repair) that exited without being killed by the soak."""
        for side in SIDES:
            worker = self.services.workers[side]
            status = worker.popen.poll()
            if status is not None:
                offset = time.time() - self.start if self.start else 0.0
                self.unexpected_exits.append({"side": side, "status": status, "offset": round(offset, 1), "log": str(worker.log_path)})
                self.progress(f"the {side} worker exited with {status} (not killed by the soak); starting it again. Its log: {worker.log_path}")
                self.services.forget(worker)
                self.services.start_worker(side)
        if self.repair is not None and self.repair.popen.poll() is not None:
            status = self.repair.popen.poll()
            offset = time.time() - self.start if self.start else 0.0
            self.unexpected_exits.append({"side": "repair", "status": status, "offset": round(offset, 1), "log": str(self.repair.log_path)})
            self.progress(f"the periodic repair exited with {status}; starting it again. Its log: {self.repair.log_path}")
            self.services.forget(self.repair)
            self.start_repair()

    # -- the end ----------------------------------------------------------------------------------

    def drain(self, done: DoneReports, reports: int) -> bool:
        """Wait until every report is done, or ``--timeout`` passed; whether they all are."""
        deadline = time.monotonic() + self.options.timeout
        last_shown = time.monotonic()
        while done.through < reports:
            if time.monotonic() >= deadline:
                self.progress(f"drain: {done.through:,}/{reports:,} reports done after {self.options.timeout:g} s (--timeout); checking what there is")
                return False
            self.supervise()
            if time.monotonic() - last_shown >= 5:
                self.progress(f"  drain: {done.through:,}/{reports:,} reports at project cost")
                last_shown = time.monotonic()
            time.sleep(TICK_SECONDS * 5)
        self.progress(f"every report at project cost ({reports:,})")
        return True

    def wait_idle(self, pipeline: Pipeline) -> bool:
        """Nothing queued, in flight or unsent, three checks running; False after IDLE_DEADLINE."""
        deadline = time.monotonic() + IDLE_DEADLINE
        while time.monotonic() < deadline:
            try:
                if all(pipeline.idle() for _ in range(3)):
                    return True
            except Exception:  # noqa: BLE001 - a server still coming back: look again
                pass
            self.supervise()
            time.sleep(0.2)
        return False

    def _ready_counts(self, pipeline: Pipeline, names: list[str]) -> dict[str, int]:
        try:
            return {name: counts.ready for name, counts in pipeline.queues.counts(names).items()}
        except Exception:  # noqa: BLE001 - the broker restarted under the connection: a new one next time
            try:
                pipeline.queues.close()
            except Exception:  # noqa: BLE001 - a dead connection may not close cleanly
                pass
            pipeline.queues = self.services.broker.queues(pipeline.broker)
            return {}

    def check(
        self, reports: list[load.BenchReport], projects: dict[str, list[load.BenchProject]], finished: bool, end: float, done: DoneReports
    ) -> SoakResult:
        databases = self.services.databases
        billable = {p.project_id for each in projects.values() for p in each if p.billable}
        expected = check.expected_keys(reports, billable)
        found = _retrying(lambda: check.collect(databases, PREFIX))
        hops = check.check_hops(expected, found)
        lost, doubled = check.line_verdicts(reports, hops)
        companies = _retrying(lambda: reconcile(databases["finance"], databases["dataverse"]))
        letters = _retrying(lambda: check.dead_letters(databases))
        # Each report's flight: its post published .. seen at project cost (or the end of the run).
        windows = {
            report: (at, done.mark.done_at.get(report_number(PREFIX, report), end)) for report, at in self.published_at.items()
        }
        rows = fault_rows(self.faults, self.options.fault_counts(), windows, lost, doubled, end)
        result = SoakResult(
            command=self.command,
            options=self.options.as_json(),
            broker=self.options.broker_label,
            reports=len(reports),
            expected_lines=sum(len(r.lines) for r in reports),
            faults=self.faults,
            rows=rows,
            hops=hops,
            lost_lines=len(lost),
            doubled_lines=len(doubled),
            reconciliation=[company.as_json() for company in companies],
            dead_letters=letters,
            unexpected_exits=self.unexpected_exits,
            finished=finished,
        )
        return result


def _retrying(read: Callable[[], Any], seconds: float = 60.0) -> Any:
    """A read of the databases, tried again while the server comes back from a fault."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return read()
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)

