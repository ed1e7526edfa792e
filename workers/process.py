"""Worker processes: one side per ``dualwrite worker`` command, in one or more OS processes.

SIGTERM or SIGINT stops a process gracefully: dramatiq finishes the messages in flight, then the
outbox relay sends what they committed.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from types import FrameType

from sqlalchemy.exc import OperationalError

from contracts.envelope import Side
from shared.logging import configure_logging, get_logger
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.runtime import Runtime

log = get_logger(__name__)


def serve(settings: Settings, sides: list[Side]) -> int:
    """Run the sides' consumers in this process until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, settings.log_format)
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime = Runtime(settings, sides)
    try:
        runtime.create_tables()
    except OperationalError as error:
        log.error("database unavailable", error=str(error.orig))
        runtime.stop()
        return ExitCode.UNAVAILABLE
    try:
        runtime.start()
    except OSError as error:  # the metrics port is taken (or not ours to bind)
        log.error("metrics endpoint unavailable", address=settings.metrics_address, port=settings.metrics_port, error=str(error))
        runtime.stop()
        return ExitCode.UNAVAILABLE
    log.info(
        "worker started",
        sides=[side.value for side in sides],
        queues=sorted(q for each in runtime.sides.values() for q in each.queue_names),
        threads=settings.worker_threads,
        metrics_port=settings.metrics_port,
    )
    stopping.wait()
    runtime.stop()
    log.info("worker stopped")
    return ExitCode.OK


def supervise(settings: Settings, sides: list[Side], processes: int) -> int:
    """Run ``processes`` copies of :func:`serve`; signals are passed on to every child."""
    if processes == 1:
        return serve(settings, sides)
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_child, args=(process_settings(settings, n), sides), name=f"dualwrite-{'-'.join(sides)}-{n}")
        for n in range(processes)
    ]
    for child in children:
        child.start()

    def _forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: each child stops gracefully

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    for child in children:
        child.join()
    return max(child.exitcode or 0 for child in children)


def process_settings(settings: Settings, index: int) -> Settings:
    """The settings of process ``index`` of a worker: its own metrics port, ``DUALWRITE_METRICS_PORT`` + index."""
    if settings.metrics_port is None:
        return settings
    return settings.model_copy(update={"metrics_port": settings.metrics_port + index})


def _child(settings: Settings, sides: list[Side]) -> None:
    raise SystemExit(serve(settings, sides))
