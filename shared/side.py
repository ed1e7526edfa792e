"""Assembling one side: its database, its consumers (one actor per queue) and its outbox relay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from sqlalchemy import MetaData

from contracts.envelope import Side
from contracts.registry import ContractRegistry
from shared.consumer import Consumer, Endpoint, declare_actor
from shared.messaging_tables import MessagingTables
from shared.metrics import Metrics, SideGauge
from shared.outbox import Outbox
from shared.periodic import PeriodicTask
from shared.publisher import Publisher
from shared.settings import Settings
from shared.signatures import Signer, key_ring, verifier
from shared.side_database import SideDatabase


@dataclass(frozen=True)
class SideSpec:
    """What a side is made of; each worker package exports one from its bootstrap module."""

    side: Side
    metadata: MetaData
    messaging: MessagingTables
    endpoints: Callable[[], list[Endpoint]]
    #: Background work of the side besides its consumers (finance: Import from staging).
    periodic: Callable[["SideRuntime", Settings], list[PeriodicTask]] | None = None
    #: Figures the side reads from its database for Prometheus (finance: integration account balance).
    gauges: tuple[SideGauge, ...] = ()


@dataclass
class SideRuntime:
    """A side wired to a broker and a database, ready for a dramatiq worker to run."""

    spec: SideSpec
    database: SideDatabase
    relay: Outbox
    consumers: list[Consumer]
    actors: list[dramatiq.Actor[Any, Any]] = field(default_factory=list)

    @property
    def queue_names(self) -> list[str]:
        return [consumer.endpoint.queue.name for consumer in self.consumers]

    def background_tasks(self, settings: Settings) -> list[PeriodicTask]:
        """The side's own tasks, then the outbox relay on a timer (for what a crash left unsent).

        Stopped in this order too, so the relay's last run sends what the others' last runs wrote.
        While the side runs the sweeper sends only rows older than ``outbox_resend_after_seconds``
        (younger ones are being sent by the transaction that wrote them); its last run sends all.
        """
        tasks = self.spec.periodic(self, settings) if self.spec.periodic is not None else []
        sweeper = PeriodicTask(
            f"{self.spec.side}-outbox-relay", settings.outbox_sweep_seconds, self.relay.sweep, final=self.relay.final_relay
        )
        return [*tasks, sweeper]


def open_database(spec: SideSpec, settings: Settings) -> SideDatabase:
    """The side's database as the settings name it (operator commands use this without a broker)."""
    return SideDatabase.open(
        spec.side.value,
        settings.database_url(spec.side.value),
        spec.metadata,
        spec.messaging,
        pool_size=settings.worker_threads + 2,
    )


def assemble_side(
    spec: SideSpec,
    settings: Settings,
    broker: dramatiq.Broker,
    registry: ContractRegistry,
    metrics: Metrics | None = None,
) -> SideRuntime:
    database = open_database(spec, settings)
    signer = Signer(key_ring(settings), spec.side.value)
    relay = Outbox(
        database,
        Publisher(broker, signer).send_raw,
        key_fields=registry.key_fields,
        resend_after=settings.outbox_resend_after_seconds,
        linger=settings.outbox_linger_seconds,
    )
    hears = verifier(settings)
    consumers = [
        Consumer(
            endpoint=endpoint, side=spec.side, registry=registry, database=database, relay=relay, verifier=hears, metrics=metrics,
            outage_wait=settings.database_outage_wait_seconds,
        )
        for endpoint in spec.endpoints()
    ]
    runtime = SideRuntime(spec=spec, database=database, relay=relay, consumers=consumers)
    runtime.actors = [declare_actor(broker, consumer) for consumer in consumers]
    return runtime
