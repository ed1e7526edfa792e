"""The bridge's background release of held messages, for maps resumed with messages on hold.

Each batch is released under the map's row lock and relayed before the next (``MapCarrier.release``),
so one process sends a map's released messages in release order. Several bridge processes each run
this task: were two of them to release one map at once, one's second batch could be sent before the
other had sent the first (each relays after its own commit). So a process releases a map only while
it holds the map's release lock (a PostgreSQL session advisory lock, taken without waiting: a
process that finds it taken leaves the map to the holder, which releases until the hold is empty).
SQLite serves one process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import text

from shared.side_database import SideDatabase

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
            with release_lock(database, name) as mine:
                if not mine:
                    continue  # another bridge process is releasing it
                count = carrier.release(database, after_batch=self.runtime.relay.relay)
            if count:
                log.info("held messages released", map=name, released=count)
                released += count
        return released


@contextmanager
def release_lock(database: SideDatabase, map_name: str) -> Iterator[bool]:
    """Whether this process may release the map now; held until the block ends (PostgreSQL only)."""
    if database.engine.dialect.name != "postgresql":
        yield True
        return
    key = f"dualwrite-release:{map_name}"
    with database.engine.connect() as connection:
        mine = bool(connection.scalar(text("SELECT pg_try_advisory_lock(hashtext(:key))"), {"key": key}))
        connection.commit()
        try:
            yield mine
        finally:
            if mine:
                connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
                connection.commit()
