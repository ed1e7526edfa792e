"""The bridge's background release of held messages, for maps resumed with messages on hold."""

from __future__ import annotations

from dataclasses import dataclass

from shared.logging import get_logger
from shared.side import SideRuntime
from workers.bridge import held_messages
from workers.bridge.handlers import MapCarrier

log = get_logger(__name__)


@dataclass
class HeldMessageRelease:
    """Releases every running map's held messages, then sends what that wrote to the outbox."""

    runtime: SideRuntime

    @classmethod
    def of(cls, runtime: SideRuntime) -> "HeldMessageRelease":
        return cls(runtime)

    @property
    def carriers(self) -> dict[str, MapCarrier]:
        """Each map's carrier, as the bridge's consumers run them now."""
        return {
            handler.name: handler
            for consumer in self.runtime.consumers
            for handler in consumer.endpoint.handlers.values()
            if isinstance(handler, MapCarrier)
        }

    def __call__(self) -> int:
        database, carriers = self.runtime.database, self.carriers
        with database.engine.connect() as connection:
            holding = held_messages.maps_holding(connection)
        released = 0
        for name in holding:
            carrier = carriers.get(name)
            if carrier is None:
                continue
            count = carrier.release(database, after_batch=self.runtime.relay.relay)
            if count:
                log.info("held messages released", map=name, released=count)
                released += count
        return released
