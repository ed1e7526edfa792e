"""Running sides: one or more sides on one broker, under one dramatiq worker.

``dualwrite worker finance`` runs a Runtime of one side per process; ``dualwrite demo`` and the
tests run all three in one process on the embedded broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import dramatiq
from dramatiq.middleware import Retries

from contracts.catalog import default_registry
from contracts.envelope import Side
from contracts.queues import all_queues
from contracts.registry import ContractRegistry
from shared.broker import make_broker
from shared.middleware.dead_letter_ledger import DeadLetterLedger
from shared.settings import Settings
from shared.waiting import wait_until
from shared.side import SideRuntime, SideSpec, assemble_side
from workers.bridge.bootstrap import SPEC as BRIDGE
from workers.dataverse.bootstrap import SPEC as DATAVERSE
from workers.finance.bootstrap import SPEC as FINANCE

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
        self.sides: dict[Side, SideRuntime] = {
            side: assemble_side(SPECS[side], settings, self.broker, self.registry) for side in sides
        }
        # dramatiq runs "after" hooks in reverse order: placed before Retries, the ledger runs
        # after Retries has decided whether the failure is final.
        self.broker.add_middleware(
            DeadLetterLedger({queue: runtime.database for runtime in self.sides.values() for queue in runtime.queue_names}),
            before=Retries,
        )
        self.background = [task for runtime in self.sides.values() for task in runtime.background_tasks(settings)]
        self.worker: dramatiq.Worker | None = None

    def side(self, side: Side) -> SideRuntime:
        return self.sides[side]

    def create_tables(self) -> None:
        for runtime in self.sides.values():
            runtime.database.create_tables()

    def start(self) -> None:
        queues = {name for runtime in self.sides.values() for name in runtime.queue_names}
        self.worker = dramatiq.Worker(
            self.broker, queues=queues, worker_threads=self.settings.worker_threads, worker_timeout=100
        )
        self.worker.start()
        for task in self.background:
            task.start()

    def stop(self) -> None:
        """Let in-flight messages finish, send what the outbox still holds, then let go of everything."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
            for task in self.background:
                task.stop()  # a last run: sends what the last messages committed
        self.broker.close()
        for runtime in self.sides.values():
            runtime.database.dispose()

    def wait_until_idle(self, timeout: float = 30.0) -> None:
        """Block until every queue of the system is empty and no outbox holds an unsent message."""
        queues = [queue.name for queue in all_queues()]

        def idle() -> bool:
            # Two passes: a message handled late in the first pass may have fed an earlier queue.
            for _ in range(2):
                for name in queues:
                    self.broker.join(name, timeout=int(timeout * 1000))
            return all(runtime.relay.backlog() == 0 for runtime in self.sides.values())

        wait_until(idle, timeout=timeout, what="pipeline idle")

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
