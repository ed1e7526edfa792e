"""What a side's process is sending straight from memory, and has sent but not yet marked sent.

A unit of work whose relay sends its outgoing messages from memory registers them as *sending*
before it commits; once sent they become *sent*, notes that the side's next transaction (a
handler's, or the relay's) writes to the outbox in one ``UPDATE``. Until then the rows read as
unsent, so the relay's own reads of the outbox leave out what this process is still sending:
a redelivery of the same message, arriving meanwhile, does not send it a second time. What a crash
leaves unsent is the sweeper's (see ``shared.outbox``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Outgoing:
    """One message a transaction wrote to the outbox, as the broker takes it."""

    queue_name: str
    actor_name: str
    message_id: str
    body: str


class SentMarks:
    """Message ids being sent, and ids sent with their time; shared by every thread of one side's process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sending: set[str] = set()
        self._sent: dict[str, datetime] = {}

    def sending(self, message_ids: Iterable[str]) -> None:
        """Messages about to be committed and then sent from memory."""
        with self._lock:
            self._sending.update(message_ids)

    def not_sending(self, message_ids: Iterable[str]) -> None:
        """Messages that will not be sent from memory after all (no commit, or the send failed)."""
        with self._lock:
            self._sending.difference_update(message_ids)

    def sent(self, message_id: str, sent_at: datetime) -> None:
        with self._lock:
            self._sending.discard(message_id)
            self._sent[message_id] = sent_at

    def take(self) -> tuple[dict[str, datetime], frozenset[str]]:
        """Every note so far, leaving none (the taker writes them, or puts them back), and what is
        being sent at this moment (which the taker must not send)."""
        with self._lock:
            taken, self._sent = self._sent, {}
            return taken, frozenset(self._sending)

    def put_back(self, marks: dict[str, datetime]) -> None:
        """Notes a transaction took and could not commit, for the next one to write."""
        if marks:
            with self._lock:
                self._sent.update(marks)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sent)
