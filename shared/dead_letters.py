"""The record of why a message died.

The broker keeps the dead message itself (dramatiq's ``<queue>.XQ``), but neither Redis nor
RabbitMQ keeps the reason. So the consuming side writes one row per death in its own database:
the original envelope, the error type and text, the traceback and the attempt count. Unlike the
broker's copy, which expires, this row stays until an operator deals with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from shared.errors import error_kind
from shared.side_database import SideDatabase


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    queue_name: str
    actor_name: str
    body: str
    error: BaseException
    traceback: str | None
    attempts: int
    contract: str | None = None
    correlation_id: str | None = None


def describe_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


def record_dead_letter(database: SideDatabase, letter: DeadLetter) -> None:
    with database.engine.begin() as connection:
        insert_dead_letter(connection, database, letter)


def insert_dead_letter(connection: Connection, database: SideDatabase, letter: DeadLetter) -> None:
    """The letter's row, in the caller's transaction (a side reporting a map's failure writes its report with it)."""
    connection.execute(
        database.messaging.dead_letters.insert(),
        {
            "message_id": letter.message_id,
            "queue_name": letter.queue_name,
            "actor_name": letter.actor_name,
            "contract": letter.contract,
            "correlation_id": letter.correlation_id,
            "error_kind": error_kind(letter.error),
            "error_type": type(letter.error).__name__,
            "error": describe_error(letter.error),
            "traceback": letter.traceback,
            "attempts": letter.attempts,
            "body": letter.body,
            "dead_at": datetime.now(UTC),
        },
    )
