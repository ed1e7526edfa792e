"""Injecting the faults of a soak, one at a time, on its private servers and its worker processes.

- ``kill``: SIGKILL. ``SIDE/child`` kills one worker process of the side's supervisor (it starts
  another); ``SIDE/group`` kills the supervisor and its children at once, as a container runtime
  does, and the soak starts the side again (what ``restart: unless-stopped`` does in compose.yaml).
  With ``--processes 1`` there is no supervisor: a child kill is a group kill. A kill waits until
  every process of its side serves (has logged ``worker started``), at most ``KILL_WAIT_SECONDS``
  after its planned moment: a side killed again while it is still starting would test nothing.
- ``broker-restart``: the private Redis shut down (its append-only file complete) and started on
  the same data, or the private RabbitMQ node stopped and started on the same data.
- ``broker-loss``: ``--messages-per-loss`` ready messages taken off the busiest queue of the
  expense flow's table maps (``workers.faults.lose_messages``), gone without a trace. Only map
  queues: their senders keep an outbox the repair sends again from; an upstream command lost on
  ``finance.commands`` is the upstream system's to send again, not the product's. Only ready
  messages can be taken: when none waits for ``FIRST_LOOK_SECONDS`` (a light load, or RabbitMQ
  handing each message to a consumer's prefetch at once), the bridge is held with SIGSTOP until
  one of its queues holds one (the posts go on meanwhile), then let go (SIGCONT).
- ``db-restart``: the private PostgreSQL cluster restarted (fast shutdown: every connection cut).
- ``conn-kill``: ``pg_terminate_backend`` on every connection to the three databases, the soak's
  own included (its reads try again).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.bench.measure import descendants
from workers.bench.options import DATABASE_NAMES
from workers.soak.schedule import PlannedFault
from workers.bench.services import WorkerProcess
from workers.soak.servers import PrivateServers, SoakServices

#: The queues a broker-loss fault may take messages from: the expense flow's table maps.
LOSS_QUEUES = (
    "msdyn_expenses.finance-to-bridge",
    "msdyn_expenses.bridge-to-dataverse",
    "msdyn_actuals.dataverse-to-bridge",
    "msdyn_actuals.bridge-to-finance",
    "msdyn_actualpostings.finance-to-bridge",
    "msdyn_actualpostings.bridge-to-dataverse",
)
#: Of those, the bridge's: a broker-loss that finds nothing waiting holds the bridge until one fills.
BRIDGE_QUEUES = tuple(name for name in LOSS_QUEUES if name.endswith("-to-bridge"))
#: How long a broker-loss fault looks for a ready message before it holds the bridge, and then at most.
FIRST_LOOK_SECONDS, LOSS_WAIT_SECONDS = 3.0, 20.0
#: The longest a kill waits for its side to serve; then it strikes anyway.
KILL_WAIT_SECONDS = 120.0
#: A worker process's log line once it consumes (JSON logs).
STARTED = '"event": "worker started"'


@dataclass
class InjectedFault:
    planned: PlannedFault
    #: Wall clock (time.time) of the injection, and seconds after the first post.
    injected_at: float
    offset: float
    #: Reports whose post was published before the injection (its documents in flight or done).
    reports_before: int
    detail: str = ""
    #: Set when the injection itself failed (the fault did not happen as planned).
    error: str | None = None
    #: Seconds the injection took (a restart blocks while the server is down and coming back).
    took: float = 0.0
    recovered_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.planned.kind

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered_at is None else round(self.recovered_at - self.injected_at, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.planned.number,
            "kind": self.kind,
            "target": self.planned.target,
            "planned_at": self.planned.at,
            "offset": round(self.offset, 2),
            "reports_before": self.reports_before,
            "detail": self.detail,
            "error": self.error,
            "took_seconds": round(self.took, 2),
            "recovery_seconds": self.recovery_seconds,
            **self.extra,
        }


def worker_children(pid: int) -> list[int]:
    """A supervisor's worker processes (multiprocessing's spawn children, not its resource tracker)."""
    found = []
    for child in descendants(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            continue
    return found


class Injector:
    """Plays one planned fault at a time; what happened goes in the fault's :class:`InjectedFault`."""

    def __init__(
        self,
        servers: PrivateServers,
        services: SoakServices,
        broker_url: str,
        queue_counts: Callable[[list[str]], dict[str, int]],
        progress: Callable[[str], None],
        *,
        messages_per_loss: int,
    ) -> None:
        self.servers = servers
        self.services = services
        self.broker_url = broker_url
        self.queue_counts = queue_counts
        self.progress = progress
        self.messages_per_loss = messages_per_loss
        #: Per supervisor pid: how many "worker started" lines its log holds once every process serves.
        self._expected: dict[int, int] = {}
        #: Per worker log: (where the last look ended, "worker started" lines up to there, the last bytes).
        self._seen: dict[Path, tuple[int, int, str]] = {}
        #: Called while a fault waits for traffic (the soak posts the waves due); whether it did anything.
        self.while_waiting: Callable[[], bool] = lambda: False

    def inject(self, fault: PlannedFault, record: InjectedFault) -> None:
        start = time.monotonic()
        try:
            record.detail = getattr(self, "_" + fault.kind.replace("-", "_"))(fault, record)
        except Exception as error:  # noqa: BLE001 - reported in the table, the run goes on
            record.error = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        record.took = time.monotonic() - start

    # -- the kinds --------------------------------------------------------------------------------

    def ready(self, fault: PlannedFault) -> bool:
        """Whether the fault can strike now. A kill waits until every worker process of its side has
        logged ``worker started`` (consuming): killing a process still importing tests nothing."""
        if fault.kind != "kill":
            return True
        side = (fault.target or "finance/group").split("/")[0]
        worker = self.services.workers[side]
        if worker.popen.poll() is not None:
            return False  # exited: the soak starts it again first
        if self.services.options.processes > 1 and not worker_children(worker.pid):
            return False
        if self.services.options.worker_log_level not in ("DEBUG", "INFO"):
            return True  # "worker started" is not logged
        return self._started(worker) >= self._expected.get(worker.pid, self.services.options.processes)

    def _started(self, worker: WorkerProcess) -> int:
        """``worker started`` lines in the worker's log so far, read on from where the last look ended
        (a log at INFO grows by megabytes: it is not read whole ten times a second)."""
        offset, count, carry = self._seen.get(worker.log_path, (0, 0, ""))
        try:
            with open(worker.log_path, encoding="utf-8", errors="replace") as log:
                log.seek(offset)
                new = log.read()
                offset = log.tell()
        except OSError:
            return count
        text = carry + new
        count += text.count(STARTED)
        self._seen[worker.log_path] = (offset, count, text[-(len(STARTED) - 1):])
        return count

    def _kill(self, fault: PlannedFault, record: InjectedFault) -> str:
        side, mode = (fault.target or "finance/group").split("/")
        worker = self.services.workers[side]
        children = worker_children(worker.pid) if mode == "child" else []
        if mode == "child" and children:
            victim = children[len(children) // 2 if fault.number % 2 else 0]
            os.kill(victim, signal.SIGKILL)
            # Its replacement logs "worker started" in the same file: the side serves again once it has.
            self._expected[worker.pid] = self._expected.get(worker.pid, self.services.options.processes) + 1
            record.extra["pids"] = [victim]
            return f"{side}: worker process {victim} of supervisor {worker.pid} (SIGKILL; its supervisor starts another)"
        pids = [worker.pid, *descendants(worker.pid)]
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.popen.wait(timeout=30)
        self.services.forget(worker)
        restarted = self.services.start_worker(side)
        record.extra["pids"] = pids
        return f"{side}: process group {worker.pid} ({len(pids)} processes, SIGKILL); started again as {restarted.pid}"

    def _broker_restart(self, fault: PlannedFault, record: InjectedFault) -> str:
        self.servers.restart_broker()
        return f"private {self.servers.broker_label} stopped and started on the same data"

    def _broker_loss(self, fault: PlannedFault, record: InjectedFault) -> str:
        from workers.faults.lose_messages import lose_queued

        held = ""
        busiest = self._ready_queue(LOSS_QUEUES, FIRST_LOOK_SECONDS)
        if busiest is None:
            # Nothing waits: a light load, or RabbitMQ handing every message to a consumer's prefetch
            # at once. The bridge is held (SIGSTOP) until one of its queues holds a ready message.
            bridge = self.services.workers["bridge"]
            started = time.monotonic()
            os.killpg(bridge.pid, signal.SIGSTOP)
            try:
                busiest = self._ready_queue(BRIDGE_QUEUES, LOSS_WAIT_SECONDS)
                if busiest is None:
                    raise RuntimeError(f"no ready message on any expense map queue within {LOSS_WAIT_SECONDS:g} s: nothing to lose")
                lost = lose_queued(self.broker_url, busiest, self.messages_per_loss)
            finally:
                os.killpg(bridge.pid, signal.SIGCONT)
            held = f"; the bridge held (SIGSTOP) {time.monotonic() - started:.1f} s for messages to wait on its queues"
            record.extra["bridge_held_seconds"] = round(time.monotonic() - started, 2)
        else:
            lost = lose_queued(self.broker_url, busiest, self.messages_per_loss)
        parts = sum(len(message.part_ids) for message in lost)
        record.extra.update({"queue": busiest, "messages_lost": len(lost), "parts_lost": parts})
        return f"{len(lost)} message(s) ({parts} part(s)) taken off {busiest}{held}"

    def _ready_queue(self, names: tuple[str, ...], seconds: float) -> str | None:
        """The queue of ``names`` with the most ready messages, once one has any; None after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            counts = self.queue_counts(list(names))
            busiest = max(names, key=lambda name: counts.get(name, 0))
            if counts.get(busiest, 0) > 0:
                return busiest
            if time.monotonic() >= deadline:
                return None
            if not self.while_waiting():
                time.sleep(0.05)

    def _db_restart(self, fault: PlannedFault, record: InjectedFault) -> str:
        self.servers.restart_postgres()
        return "private PostgreSQL restarted (fast shutdown: every connection cut)"

    def _conn_kill(self, fault: PlannedFault, record: InjectedFault) -> str:
        ended = self.servers.terminate_connections(list(DATABASE_NAMES.values()))
        record.extra["connections"] = ended
        return f"{ended} connection(s) to the three databases terminated (pg_terminate_backend)"
