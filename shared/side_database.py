"""One side's database: its engine, its tables, and the messaging tables beside them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, MetaData, text

from shared.database import make_engine
from shared.database_outage import Availability
from shared.messaging_tables import MessagingTables
from shared.outbox_marks import SentMarks


@dataclass
class SideDatabase:
    """The database a side owns; no other side ever reads it."""

    side: str
    engine: Engine
    metadata: MetaData
    messaging: MessagingTables
    #: Messages this process sent from memory whose outbox rows are not yet marked sent.
    sent_marks: SentMarks = field(default_factory=SentMarks)
    #: Whether the database answers, as this process's consumers last found it (``shared.database_outage``).
    availability: Availability = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.availability = Availability(self.side, self.ping)

    def ping(self) -> None:
        """Raise unless the database answers a ``SELECT 1`` (on a pooled connection, or a new one)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @classmethod
    def open(cls, side: str, url: str, metadata: MetaData, messaging: MessagingTables, *, pool_size: int = 10) -> "SideDatabase":
        return cls(side=side, engine=make_engine(url, pool_size=pool_size), metadata=metadata, messaging=messaging)

    def create_tables(self) -> None:
        self.metadata.create_all(self.engine)

    def drop_tables(self) -> None:
        self.metadata.drop_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
