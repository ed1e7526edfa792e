"""One side's database: its engine, its tables, and the messaging tables beside them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, MetaData

from shared.database import make_engine
from shared.messaging_tables import MessagingTables


@dataclass
class SideDatabase:
    """The database a side owns; no other side ever reads it."""

    side: str
    engine: Engine
    metadata: MetaData
    messaging: MessagingTables

    @classmethod
    def open(cls, side: str, url: str, metadata: MetaData, messaging: MessagingTables, *, pool_size: int = 10) -> "SideDatabase":
        return cls(side=side, engine=make_engine(url, pool_size=pool_size), metadata=metadata, messaging=messaging)

    def create_tables(self) -> None:
        self.metadata.create_all(self.engine)

    def drop_tables(self) -> None:
        self.metadata.drop_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
