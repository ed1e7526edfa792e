"""Worker processes: one side per ``dualwrite worker`` command, in one or more OS processes.

A worker refuses to start (exit 6, SCHEMA_BEHIND) on a database that is not at the head of its
migrations; ``dualwrite db upgrade`` creates or upgrades it.

SIGTERM or SIGINT stops a process gracefully: dramatiq finishes the messages in flight, then the
outbox relay sends what they committed.

A worker process takes both with ``sigwait``, never with a Python handler (workers/stop_signals.py says why).
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import multiprocessing.connection
import signal
from types import FrameType

from sqlalchemy.exc import OperationalError

from contracts.envelope import Side
from shared import connectivity, migrations
from shared.logging import configure_logging, get_logger
from shared.redaction import redact_text
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.configuration import remember_settings_secrets
from workers.cli.output import fail
from workers.malloc_arenas import limit_malloc_arenas
from workers.runtime import Runtime
from workers.stop_signals import (
    forget_stop_signals,
    stop_requested,
    stop_signal_within,
    stop_signals_blocked,
    wait_for_stop_signal,
)

log = get_logger(__name__)


def serve(settings: Settings, sides: list[Side]) -> int:
    """Run the sides' consumers in this process until SIGTERM or SIGINT.

    First, each side's database and the broker must answer within ``DUALWRITE_CONNECT_TIMEOUT_SECONDS``
    (one line logged per failed attempt); otherwise the process exits 4 (UNAVAILABLE).
    """
    remember_settings_secrets(settings)  # a spawned worker process starts with none remembered
    limit_malloc_arenas()  # before any worker thread starts: workers/malloc_arenas.py says why
    configure_logging(settings.log_level, settings.log_format)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a worker that is slow to stop is doing.
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (OSError, ValueError):  # stderr is no file (serve called in-process under a test runner)
        pass
    with stop_signals_blocked():
        return _serve(settings, sides)


def _serve(settings: Settings, sides: list[Side]) -> int:
    if stop_requested():  # asked to stop before anything was built
        forget_stop_signals()
        return ExitCode.OK
    services = connectivity.services_of(settings.broker_url, {side.value: settings.database_url(side.value) for side in sides})
    try:
        unreachable = connectivity.wait_for_services(
            services, settings.connect_timeout_seconds, log=log, stop_within=stop_signal_within
        )
    except connectivity.Stopped:
        forget_stop_signals()
        log.info("worker stopped before it started")
        return ExitCode.OK
    if unreachable is not None:
        message = unreachable.message(settings.connect_timeout_seconds)
        log.error("broker or database unreachable; the worker exits", error=message)
        fail(message)
        return ExitCode.UNAVAILABLE
    runtime = Runtime(settings, sides)
    try:
        # Never create or alter a schema here: `dualwrite db upgrade` does, once, before the workers.
        for side in runtime.sides.values():
            migrations.require_head(side.database)
    except OperationalError as error:
        log.error("database unavailable", error=redact_text(error.orig))
        fail(f"database unavailable: {error.orig}")
        runtime.stop()
        return ExitCode.UNAVAILABLE
    except migrations.SchemaBehind as behind:
        log.error(
            "database behind its schema migrations",
            side=behind.side,
            current=behind.current,
            head=behind.head,
            run=f"{migrations.UPGRADE_COMMAND} --side {behind.side}",
        )
        fail(str(behind))
        runtime.stop()
        return ExitCode.SCHEMA_BEHIND
    if stop_requested():  # asked to stop while starting: nothing was consumed yet
        runtime.stop()
        forget_stop_signals()
        log.info("worker stopped before it started")
        return ExitCode.OK
    try:
        runtime.start()
    except OSError as error:  # the metrics port is taken (or not ours to bind)
        log.error("metrics endpoint unavailable", address=settings.metrics_address, port=settings.metrics_port, error=str(error))
        runtime.stop()
        return ExitCode.UNAVAILABLE
    log.info(
        "worker started",
        sides=[side.value for side in sides],
        # The id its Redis heartbeat and in-flight messages go by (`dualwrite queues`); None on RabbitMQ.
        redis_worker_id=getattr(runtime.broker, "broker_id", None),
        queues=sorted(q for each in runtime.sides.values() for q in each.queue_names),
        threads=settings.worker_threads,
        metrics_port=settings.metrics_port,
    )
    received = wait_for_stop_signal()
    log.info("stopping", signal=received.name)
    runtime.stop()
    forget_stop_signals()
    log.info("worker stopped")
    return ExitCode.OK


#: How often the supervisor says which child it is still waiting for while they stop.
STILL_STOPPING_SECONDS = 10.0


def supervise(settings: Settings, sides: list[Side], processes: int) -> int:
    """Run ``processes`` copies of :func:`serve`, pass SIGTERM and SIGINT on to every child.

    A child killed by a signal (SIGKILL, the OOM killer) is logged with its status and started
    again; its unacknowledged messages come back to the queues (RabbitMQ: at once; Redis: after the
    heartbeat timeout, at the next maintenance pass: about 10-12 s with the defaults). A child that
    exits with an error of its own (database unavailable, metrics port taken) stops the others, and
    the supervisor exits with that child's status.

    Every line names its process: ``pid`` the writer's (shared/logging.py), and on the supervisor's
    lines about a child, ``child_pid`` that child's.
    """
    if processes == 1:
        return serve(settings, sides)
    configure_logging(settings.log_level, settings.log_format)  # the supervisor's own lines, as its children's
    context = multiprocessing.get_context("spawn")
    children: dict[int, multiprocessing.process.BaseProcess] = {}
    signalled: set[int | None] = set()
    stopping = False

    def spawn(n: int) -> multiprocessing.process.BaseProcess:
        child = context.Process(target=_child, args=(process_settings(settings, n), sides), name=f"dualwrite-{'-'.join(sides)}-{n}")
        child.start()  # a SIGTERM before serve() blocks it ends the child at once: nothing was consumed yet
        log.info("worker process started", process=child.name, child_pid=child.pid)
        return child

    def _forward(_signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread, which never blocks on a lock this takes: a flag, a kill per child.
        nonlocal stopping
        stopping = True
        for child in list(children.values()):
            if child.is_alive() and child.pid not in signalled:
                signalled.add(child.pid)  # once: a child holds the signal pending until it takes it
                child.terminate()

    # Before the first child: a SIGTERM from now on is passed on, never the supervisor's death alone.
    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for n in range(processes):
        if not stopping:
            children[n] = spawn(n)
    failed: int | None = None
    while not stopping:
        multiprocessing.connection.wait([child.sentinel for child in children.values()], timeout=1.0)
        for n, child in list(children.items()):
            code = child.exitcode
            if code is None or stopping:
                continue
            if code > 0:
                log.error("worker process failed; stopping the others", process=child.name, child_pid=child.pid, exit_code=code)
                failed = code
                _forward(signal.SIGTERM, None)
                break
            reason = signal.Signals(-code).name if code < 0 else "exit 0"
            log.error("worker process died; starting another", process=child.name, child_pid=child.pid, exit_code=code, reason=reason)
            children[n] = spawn(n)
    _forward(signal.SIGTERM, None)  # a child started while the signal arrived has not had it yet
    for child in children.values():
        child.join(timeout=STILL_STOPPING_SECONDS)
        while child.is_alive():  # finishing its batches: in-flight messages are never cut short
            log.warning("worker process still stopping", process=child.name, child_pid=child.pid)
            child.join(timeout=STILL_STOPPING_SECONDS)
        if _stopped_by_us(child, signalled):
            # It logs nothing itself: the signal ended it before serve() could hold it pending.
            log.info("worker process stopped while starting", process=child.name, child_pid=child.pid)
        elif child.exitcode:
            log.error("worker process exited", process=child.name, child_pid=child.pid, exit_code=child.exitcode)
    if failed is not None:
        return failed
    codes = [0 if _stopped_by_us(child, signalled) else child.exitcode or 0 for child in children.values()]
    # A negative status is a child killed by that signal: report it as a shell would (128 + signal).
    return next((code if code > 0 else 128 - code for code in codes if code != 0), ExitCode.OK)


def _stopped_by_us(child: multiprocessing.process.BaseProcess, signalled: set[int | None]) -> bool:
    """Killed by the SIGTERM we sent while it was still starting, before serve() blocked it: nothing in flight."""
    return child.exitcode == -signal.SIGTERM and child.pid in signalled


def process_settings(settings: Settings, index: int) -> Settings:
    """The settings of process ``index`` of a worker: its own metrics port, ``DUALWRITE_METRICS_PORT`` + index."""
    if settings.metrics_port is None:
        return settings
    return settings.model_copy(update={"metrics_port": settings.metrics_port + index})


def _child(settings: Settings, sides: list[Side]) -> None:
    raise SystemExit(serve(settings, sides))
