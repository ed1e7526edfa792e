"""Running sides: one or more sides on one broker, under one dramatiq worker.

``dualwrite worker finance`` runs a Runtime of one side per process; ``dualwrite demo`` and the
tests run all three in one process on the embedded broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.middleware import Retries

from contracts.catalog import default_registry
from contracts.envelope import Side
from contracts.queues import all_queues
from contracts.registry import ContractRegistry
from shared.broker import make_broker
from shared.errors import Malformed
from shared.intake import Refusal
from shared.metrics import Metrics, MetricsExporter
from shared.middleware.dead_letter_ledger import DeadLetterLedger
from shared.middleware.metrics import DeadLetterMetrics
from shared.middleware.prometheus import DramatiqPrometheus
from shared.settings import Settings
from shared.waiting import wait_until
from shared.side import SideRuntime, SideSpec, assemble_side
from workers.bridge.bootstrap import SPEC as BRIDGE
from workers.bridge.map_failures import map_failure_watch
from workers.operations.dead_letter_reports import MapReplayWatch, map_failure_reporters
from workers.dataverse.bootstrap import SPEC as DATAVERSE
from workers.finance.bootstrap import SPEC as FINANCE

if TYPE_CHECKING:
    from workers.operations.broker_queues import BrokerQueues

SPECS: dict[Side, SideSpec] = {Side.FINANCE: FINANCE, Side.DATAVERSE: DATAVERSE, Side.BRIDGE: BRIDGE}
ALL_SIDES: tuple[Side, ...] = (Side.DATAVERSE, Side.BRIDGE, Side.FINANCE)


class Runtime:
    """Sides assembled on one broker; :meth:`start` runs their consumers, :meth:`stop` drains them."""

    def __init__(
        self,
        settings: Settings,
        sides: Iterable[Side] = ALL_SIDES,
        *,
        broker: dramatiq.Broker | None = None,
        registry: ContractRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.broker = broker or make_broker(settings)
        self.registry = registry or default_registry()
        self.metrics = Metrics()
        self.sides: dict[Side, SideRuntime] = {
            side: assemble_side(SPECS[side], settings, self.broker, self.registry, self.metrics) for side in sides
        }
        # dramatiq runs "after" hooks in reverse order: placed before Retries, the ledger runs
        # after Retries has decided whether the failure is final.
        # A table map's message refused by finance or Dataverse is reported to the bridge with its letter,
        # and so is one of those letters applied once an operator replayed it.
        reporters = map_failure_reporters(self.sides.values())
        self.ledger = DeadLetterLedger(
            {queue: runtime.database for runtime in self.sides.values() for queue in runtime.queue_names}, reporters
        )
        self.broker.add_middleware(self.ledger, before=Retries)
        self.replay_watch = MapReplayWatch(reporters)
        self.broker.add_middleware(self.replay_watch, before=Retries)
        if Side.BRIDGE in self.sides:  # table maps count their failures and apply their alert rules
            self.broker.add_middleware(map_failure_watch(self.sides[Side.BRIDGE]), before=Retries)
        self._add_metrics_middleware()
        self._hear_refusals()
        self.background = [task for runtime in self.sides.values() for task in runtime.background_tasks(settings)]
        self.worker: dramatiq.Worker | None = None
        self.exporter: MetricsExporter | None = None

    def _add_metrics_middleware(self) -> None:
        """dramatiq's message metrics and our dead-letter counter, both feeding this runtime's registry."""
        consumed = {c.endpoint.queue.name: c.endpoint.queue for runtime in self.sides.values() for c in runtime.consumers}
        known_contracts = frozenset(contract.name for contract in self.registry)
        self.metrics_middleware = [
            DramatiqPrometheus(self.metrics.registry),
            DeadLetterMetrics(self.metrics, consumed, known_contracts),
        ]
        self.broker.add_middleware(self.metrics_middleware[0])
        self.broker.add_middleware(self.metrics_middleware[1], before=Retries)  # after Retries decided, as the ledger
        self.metrics.watch((runtime.database, runtime.spec.gauges) for runtime in self.sides.values())

    def _hear_refusals(self) -> None:
        """Bytes our consumers refuse before any actor runs (``shared.intake``): recorded as dead
        letters by the consuming side, and counted."""
        intake = getattr(self.broker, "intake", None)
        if intake is None:
            return
        consumed = {c.endpoint.queue.name: c.endpoint.queue for runtime in self.sides.values() for c in runtime.consumers}

        def record(refusal: Refusal) -> None:
            self.ledger.record_refusal(refusal)
            queue = consumed.get(refusal.queue_name)
            if queue is not None:
                self.metrics.refused(queue, Malformed.reason)

        intake.on_refused = record

    def side(self, side: Side) -> SideRuntime:
        return self.sides[side]

    def create_tables(self) -> None:
        for runtime in self.sides.values():
            runtime.database.create_tables()

    def start(self) -> None:
        """Serve the metrics (when a port is set), then consume; a port in use raises OSError first."""
        if self.settings.metrics_port is not None:
            self.exporter = MetricsExporter.start(self.metrics.registry, self.settings.metrics_address, self.settings.metrics_port)
        queues = {name for runtime in self.sides.values() for name in runtime.queue_names}
        for runtime in self.sides.values():
            runtime.database.availability.reset()
        self.worker = dramatiq.Worker(
            self.broker, queues=queues, worker_threads=self.settings.worker_threads, worker_timeout=100
        )
        self.worker.start()
        for task in self.background:
            task.start()

    def stop(self) -> None:
        """Let in-flight messages finish, send what the outbox still holds, then let go of everything."""
        if self.worker is not None:
            # No worker thread takes another message from here on (dramatiq's stop does this too, a
            # moment later); then a thread waiting out a database outage gives its message back.
            for thread in self.worker.workers:
                thread.stop()
            for runtime in self.sides.values():
                runtime.database.availability.release()
            self.worker.stop()
            self.worker = None
            for task in self.background:
                task.stop()  # a last run: sends what the last messages committed
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
        for middleware in self.metrics_middleware:
            if middleware in self.broker.middleware:
                self.broker.middleware.remove(middleware)
        self._release_broker()
        self.broker.close()
        for runtime in self.sides.values():
            runtime.database.dispose()

    def _release_broker(self) -> None:
        """Take our actors and dead-letter ledger off the broker, so a new Runtime can be assembled on it.

        The embedded broker holds the queues in this process: workers restarted on it must reuse it,
        and dramatiq refuses to declare an actor whose name is already registered.
        """
        for runtime in self.sides.values():
            for actor in runtime.actors:
                if self.broker.actors.get(actor.actor_name) is actor:
                    del self.broker.actors[actor.actor_name]
        for middleware in (self.ledger, self.replay_watch):
            if middleware in self.broker.middleware:
                self.broker.middleware.remove(middleware)
        intake = getattr(self.broker, "intake", None)
        if intake is not None:
            intake.on_refused = None

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Block until the pipeline is idle three checks running (see :meth:`idle`)."""
        from workers.operations.broker_queues import broker_queues_for

        queues = broker_queues_for(self.broker, self.settings.broker_url)
        try:
            wait_until(lambda: all(self.idle(queues) for _ in range(3)), timeout=timeout, interval=0.05, what="pipeline idle")
        finally:
            queues.close()

    def idle(self, queues: "BrokerQueues") -> bool:
        """No queue of the system holds a message (ready, delayed, or fetched and unacknowledged
        where the broker can tell: Redis), no thread of this runtime's worker holds one (what
        RabbitMQ cannot tell), and no outbox of its sides holds an unsent message.

        Broker counts rather than dramatiq's ``join``, which on RabbitMQ polls each queue ten times
        100 ms apart and does not see unacknowledged messages.
        """
        counts = queues.counts([queue.name for queue in all_queues()]).values()
        if any(c.ready or c.delayed or c.in_flight for c in counts):
            return False
        worker = self.worker
        if worker is not None and (
            worker.work_queue.unfinished_tasks or any(consumer.delay_queue.unfinished_tasks for consumer in worker.consumers.values())
        ):
            return False
        return all(runtime.relay.backlog() == 0 for runtime in self.sides.values())

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
