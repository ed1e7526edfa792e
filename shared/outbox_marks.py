"""What a side's process is sending straight from memory, and has sent but not yet marked sent.

A unit of work whose relay sends its outgoing messages from memory registers them as *sending*
before it commits; once sent they become *sent*, notes that the side's next transaction (a
handler's, or the relay's) writes to the outbox in one ``UPDATE``. Until then the rows read as
unsent, so the relay's own reads of the outbox leave out what this process is still sending:
a redelivery of the same message, arriving meanwhile, does not send it a second time. What a crash
leaves unsent is the sweeper's (see ``shared.outbox``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Outgoing:
    """One outbox row (a *part*: one business document's rows for one queue), as the relay sends it."""

    queue_name: str
    actor_name: str
    message_id: str
    #: The part's own envelope: what is sent when it leaves alone.
    body: str
    contract: str
    version: int
    source: str
    legal_entity: str | None

    @property
    def group(self) -> tuple[str, ...]:
        """Parts of one group may leave in one message (``shared.outbox_batches``)."""
        return (self.queue_name, self.actor_name, self.contract, str(self.version), self.source, self.legal_entity or "")

    @classmethod
    def from_row(cls, queue_name: str, actor_name: str, message_id: str, body: str) -> "Outgoing":
        """A stored outbox row; what the row has no column for is read from its envelope."""
        try:
            envelope = json.loads(body)
            head = (str(envelope["contract"]), int(envelope["version"]), str(envelope["source"]), envelope.get("legal_entity"))
        except (ValueError, KeyError, TypeError):
            # Not ours to judge here: it leaves alone, as written, and its receiver says what is wrong.
            head = ("", 0, "", message_id)
        return cls(queue_name, actor_name, message_id, body, *head)


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

    def sent(self, message_ids: Iterable[str], sent_at: datetime) -> None:
        """The parts of one message, just sent."""
        with self._lock:
            for message_id in message_ids:
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
