"""The bridge's background release of held messages, for maps resumed with messages on hold."""

from __future__ import annotations

from dataclasses import dataclass

from shared.logging import get_logger
from shared.outbox import OutboxRelay
from shared.side import SideRuntime
from shared.side_database import SideDatabase
from workers.bridge import held_messages
from workers.bridge.handlers import MapCarrier

log = get_logger(__name__)


@dataclass
class HeldMessageRelease:
    """Releases every running map's held messages, then sends what that wrote to the outbox."""

    database: SideDatabase
    relay: OutboxRelay
    carriers: dict[str, MapCarrier]

    @classmethod
    def of(cls, runtime: SideRuntime) -> "HeldMessageRelease":
        carriers = {
            name: handler
            for consumer in runtime.consumers
            for handler in consumer.endpoint.handlers.values()
            if isinstance(handler, MapCarrier)
            for name in [handler.name]
        }
        return cls(runtime.database, runtime.relay, carriers)

    def __call__(self) -> int:
        with self.database.engine.connect() as connection:
            holding = held_messages.maps_holding(connection)
        released = 0
        for name in holding:
            carrier = self.carriers.get(name)
            if carrier is None:
                continue
            count = carrier.release(self.database, after_batch=self.relay.relay)
            if count:
                log.info("held messages released", map=name, released=count)
                released += count
        return released
