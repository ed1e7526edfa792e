"""One bench run, from fresh databases to clean-up."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from contracts.catalog import default_registry
from contracts.envelope import Side
from shared.broker import make_broker
from shared.settings import Settings
from shared.signatures import key_ring
from workers.bench import load
from workers.bench.initial_sync_phase import initial_sync_phase
from workers.bench.measure import ProcessMemory, RssSampler, process_memory, worker_processes
from workers.bench.noop import READY, acked_at, measure_noop
from workers.bench.options import BenchOptions
from workers.bench.phases import idle_phase, light_load, throughput
from workers.bench.prepare import Pipeline, load_setup, prepare_reports
from workers.bench.profile import Profiler, find_py_spy
from workers.bench.report import BenchResult, targets
from workers.bench.services import BenchServices, wait_for
from workers.bench.signature_cost import signature_cost
from workers.runtime import SPECS

SIDES = ("finance", "dataverse", "bridge")
THROUGHPUT_PREFIX, LIGHT_PREFIX = "T", "L"
#: Seconds between two samples of the workers' resident memory in the throughput phase.
RSS_INTERVAL = 1.0


class Progress:
    """Progress lines on stderr, each with the seconds since the run began."""

    def __init__(self, stream=sys.stderr) -> None:  # noqa: ANN001
        self.stream = stream
        self.start = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:7.1f} s] {message}", file=self.stream, flush=True)


def run_bench(options: BenchOptions, command: str, progress: Callable[[str], None]) -> BenchResult:
    """Run every phase; whatever happens, worker processes are stopped, Redis flushed, databases dropped (unless --keep)."""
    options.check()
    workdir = Path(tempfile.mkdtemp(prefix="dualwrite-bench-"))
    services = BenchServices(options, workdir, progress)
    finished = False
    try:
        result = _run(options, command, services, progress)
        finished = True
        return result
    finally:
        # A second Ctrl-C must not cut the clean-up short; every step of it has its own deadline.
        interrupts = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
        if services.touched:
            broker_step = "flushing Redis" if services.broker.kind == "redis" else f"deleting RabbitMQ vhost {getattr(services.broker, 'vhost', '')}"
            progress(f"cleaning up: stopping worker processes, {broker_step}" + ("" if options.keep else ", dropping the bench databases"))
        for problem in services.clean_up():
            progress(f"clean-up: {problem}")
        if services.started_any and (options.keep or not finished):
            progress(f"worker logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        for signum, handler in interrupts.items():
            signal.signal(signum, handler)


def _run(options: BenchOptions, command: str, services: BenchServices, progress: Callable[[str], None]) -> BenchResult:
    load_start = os.getloadavg()[0]
    services.check_reachable()
    services.claim_server()  # one bench at a time: every run drops the same databases
    prepared = services.prepare_broker()
    services.recreate_databases({side: SPECS[Side(side)] for side in SIDES})
    progress(f"fresh databases {', '.join(f'dualwrite_bench_{s}' for s in SIDES)}; {prepared}")
    bench_broker = services.broker
    cpu_key = bench_broker.cpu_key

    # The baseline first, while nothing else runs on the machine.
    noop_command = [sys.executable, "-m", "workers.bench.noop", "--broker-url", bench_broker.url, "--threads", "8"]
    if not bench_broker.counts_in_flight:  # RabbitMQ: the worker says when it has acked them all
        noop_command += ["--expect", str(options.noop_messages)]
    noop = services.start("noop", noop_command)
    wait_for(lambda: READY in noop.log_path.read_text(errors="replace"), timeout=60, interval=0.05, what="no-op worker start", check=noop.check_alive)
    progress(f"baseline: no-op worker ready (pid {noop.pid}, 8 threads, {bench_broker.label}); enqueuing {options.noop_messages:,} messages")
    acked = None if bench_broker.counts_in_flight else (lambda: acked_at(noop.log_path.read_text(errors="replace"), options.noop_messages))
    baseline = measure_noop(
        bench_broker.url, options.noop_messages, 8, timeout=options.timeout, check=noop.check_alive, progress=progress, acked=acked
    )
    services.stop(noop)
    progress(f"baseline: {baseline.messages_per_second:,.0f} no-op messages/s on {bench_broker.label}")

    for side in SIDES:
        process = services.start_worker(side)
        progress(f"started {side} worker: pid {process.pid}, {options.processes} process(es) x {options.threads} threads")
    progress(f"workers: Import from staging every {options.import_interval:g} s (DUALWRITE_IMPORT_INTERVAL_SECONDS, default 2 s)")

    settings = Settings(broker_url=bench_broker.url, keys_dir=services.keys_dir)
    broker = make_broker(settings)
    pipeline: Pipeline | None = None
    profiler: Profiler | None = None
    try:
        pipeline = Pipeline(services, broker, default_registry(), key_ring(settings), timeout=options.timeout, progress=progress)
        companies = load.companies(options.legal_entities)
        projects = {c.legal_entity: load.projects(c, options.projects) for c in companies}
        load_setup(pipeline, companies, projects)

        heavy = load.generate_reports(companies, projects, options.reports, options.lines, prefix=THROUGHPUT_PREFIX)
        light = load.generate_reports(companies, projects, options.light, options.lines, prefix=LIGHT_PREFIX)
        progress(f"preparing {len(heavy) + len(light):,} reports ({options.lines} lines each): create, submit, approve (untimed)")
        prepare_reports(pipeline, heavy + light, options.lines)
        pipeline.wait_idle("pipeline idle before the throughput phase")

        # Every worker process (a supervisor's children too, --processes > 1), named as the memory line names them.
        processes = worker_processes([(process.role, process.pid) for process in services.processes])
        sampler = RssSampler(processes, RSS_INTERVAL)
        if options.profile:
            profiler = Profiler(_profile_directory(options), find_py_spy() or "py-spy", [(p.role, p.pid) for p in services.processes])
        profile: dict | None = None

        def started() -> None:
            if profiler is not None:
                profiler.start()
                progress(f"profile: py-spy attached to {', '.join(side for side, _ in profiler.workers)}; profiles in {profiler.directory}")
            sampler.start()

        def ended() -> None:
            nonlocal profile
            sampler.stop()
            if profiler is not None:
                profile = profiler.stop({pid: role for role, pid in processes})

        progress(f"throughput: posting {len(heavy):,} reports ({options.expected_lines:,} lines) as fast as possible")
        heavy_result = throughput(pipeline, heavy, options.lines, options.reports_per_post, broker_cpu=cpu_key, started=started, ended=ended)
        rss = sampler.stop()
        progress(
            f"throughput: {heavy_result.lines_per_second:,.0f} expense lines/s; latency p50 {heavy_result.latency.p50_ms:,.0f} ms, "
            f"p99 {heavy_result.latency.p99_ms:,.0f} ms"
        )
        reconciliation = heavy_result.reconciliation
        light_result = None
        if light:
            pipeline.wait_idle("pipeline idle before the light-load phase")
            progress(f"light load: posting {len(light)} reports one at a time")
            light_result, reconciliation = light_load(pipeline, light, options.lines, lines_before=options.expected_lines)
            progress(f"light load: latency p50 {light_result.latency.p50_ms:,.0f} ms, p99 {light_result.latency.p99_ms:,.0f} ms")
        pipeline.wait_idle("pipeline idle at the end")

        memory: list[ProcessMemory] = []
        for process in services.processes:
            memory += process_memory(process.role, process.pid)
        signatures = signature_cost(services.databases, pipeline.ring)

        idle = None
        if options.idle_seconds > 0:
            progress(f"idle: every worker idle for {options.idle_seconds:g} s; CPU per process")
            idle = idle_phase(pipeline, options.idle_seconds, processes, broker_cpu=cpu_key)
            progress("idle: " + ", ".join(f"{role} {value if value is not None else '?'} %" for role, value in idle.processes.items()))

        synced = None
        if options.initial_sync:
            synced = initial_sync_phase(pipeline, options.initial_sync, options.initial_sync_page_size, broker_cpu=cpu_key)
            progress(f"initial sync: {synced.rows_per_second:,.0f} rows/s")
            pipeline.wait_idle("pipeline idle after the initial sync")
    except BaseException:
        if profiler is not None:
            profiler.kill()
        raise
    finally:
        if pipeline is not None:
            pipeline.close()
        broker.close()

    all_projects = [p for each in projects.values() for p in each]
    result = BenchResult(
        command=command,
        options=options.as_json(),
        companies=[f"{c.legal_entity} ({c.currency})" for c in companies],
        projects=len(all_projects),
        billable_projects=sum(p.billable for p in all_projects),
        baseline=baseline.as_json(),
        throughput=heavy_result.as_json(),
        light=light_result.as_json() if light_result else None,
        memory=memory,
        reconciliation=[c.as_json() for c in reconciliation],
    )
    result.signatures = signatures
    result.machine = {"cpus": os.cpu_count(), "load_start": round(load_start, 2), "load_end": round(os.getloadavg()[0], 2)}
    result.broker = {"kind": bench_broker.kind, "label": bench_broker.label, "url": bench_broker.shown_url}
    if bench_broker.kind == "amqp":
        admin = getattr(bench_broker, "admin", None)
        result.broker.update({"vhost": getattr(bench_broker, "vhost", None), "vhost_made_with": getattr(admin, "how", None)})
    result.rss = rss.as_json()
    result.idle = idle.as_json() if idle else None
    result.initial_sync = synced.as_json() if synced else None
    result.profile = profile
    result.targets = targets(
        heavy_result.lines_per_second, light_result.latency.p99_ms if light_result else None, memory, idle.processes if idle else None
    )
    return result


def _profile_directory(options: BenchOptions) -> Path:
    if options.profile_dir:
        return Path(options.profile_dir)
    return Path(tempfile.mkdtemp(prefix="dualwrite-bench-profile-"))
