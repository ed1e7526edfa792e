"""The dead letters of the whole system, grouped by cause, as ``dualwrite dlq`` shows them.

The sides' ``dead_letters`` tables say why each message died; the broker's ``<queue>.XQ`` holds
the message itself until it expires. A letter is listed from its row, cross-checked against the
broker: one whose broker copy has expired is still listed (and can still be replayed, from the
row's copy of the envelope), flagged ``in_broker: false``. A broker copy without a row (the
side could not record the reason) is listed too, under a cause of its own.

Whatever a letter's body holds (not JSON, not UTF-8, JSON nested 100,000 deep, fields of the
wrong types), it is listed, grouped and shown: bodies are read with :mod:`shared.untrusted_json`,
and one that is not JSON is shown as text, capped, its non-printable characters escaped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.queues import all_queues
from shared.dead_letters import body_cut_size
from shared.untrusted_json import parse_object, read, shown, text_field
from workers.operations.broker_queues import BrokerLetter, BrokerQueues
from workers.operations.dead_letter_records import DeadLetterLedgers, DeadLetterRecord
from workers.operations.failure_causes import Cause, cause_of, refusal_reason

UNRECORDED = "UnrecordedReason"
UNRECORDED_TEXT = "dead-lettered without a recorded reason (see the consuming worker's log)"
#: Widths of what a letter without a row shows from its broker copy (as a row would hold them).
_CONTRACT_CHARACTERS = 64
_ACTOR_CHARACTERS = 128


@dataclass(frozen=True)
class DeadLetter:
    """A message dead now: the row of its latest death and the broker's copies of it."""

    message_id: str
    queue_name: str
    record: DeadLetterRecord | None
    broker_copies: tuple[BrokerLetter, ...]
    #: False when the broker could not be asked (the embedded broker, from another process).
    broker_checked: bool

    @property
    def cause(self) -> Cause:
        if self.record is None:
            return cause_of(self.contract, UNRECORDED, UNRECORDED_TEXT)
        return cause_of(self.record.contract, self.record.error_type, self.record.error, self.queue_name)

    @property
    def reason(self) -> str | None:
        """The refusal's reason when the letter was refused (unauthenticated, malformed...), else None."""
        return refusal_reason(self.record.error_type) if self.record is not None else None

    @property
    def contract(self) -> str | None:
        if self.record is not None:
            return self.record.contract
        return text_field(parse_object(self.body), "contract", _CONTRACT_CHARACTERS)

    @property
    def body(self) -> str:
        """The original envelope JSON, from the row (it outlives the broker's copy); from the broker's
        copy when there is no row, or when the row kept only the start of a huge body."""
        if self.record is None:
            return self.broker_copies[0].body
        if self.body_cut and self.broker_copies:
            return self.broker_copies[0].body
        return self.record.body

    @property
    def body_cut(self) -> bool:
        """Whether the row kept only the start of the body (shared/dead_letters.py ``BODY_BYTES``)."""
        return self.record is not None and body_cut_size(self.record.body) is not None

    @property
    def dead_at(self) -> datetime | None:
        return self.record.dead_at if self.record is not None else self.broker_copies[0].dead_at

    @property
    def in_broker(self) -> bool | None:
        return bool(self.broker_copies) if self.broker_checked else None

    @property
    def actor_name(self) -> str:
        for queue in all_queues():
            if queue.name == self.queue_name:
                return queue.actor_name
        if self.record is not None:
            return self.record.actor_name
        return text_field(self.broker_copies[0].message, "actor_name", _ACTOR_CHARACTERS) or ""

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "side": self.record.side if self.record else None,
            "queue": self.queue_name,
            "dead_at": _iso(self.dead_at),
            "attempts": self.record.attempts if self.record else None,
            "correlation_id": self.record.correlation_id if self.record else None,
            "in_broker": self.in_broker,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DeadLetterGroup:
    """Letters dead of one cause."""

    cause: Cause
    letters: tuple[DeadLetter, ...]

    @property
    def group_id(self) -> str:
        return self.cause.cause_id

    @property
    def first_seen(self) -> datetime | None:
        return min((letter.dead_at for letter in self.letters if letter.dead_at), default=None)

    @property
    def last_seen(self) -> datetime | None:
        return max((letter.dead_at for letter in self.letters if letter.dead_at), default=None)

    @property
    def queues(self) -> list[str]:
        return sorted({letter.queue_name for letter in self.letters})

    @property
    def error_kind(self) -> str | None:
        kinds = {letter.record.error_kind for letter in self.letters if letter.record}
        return kinds.pop() if len(kinds) == 1 else None

    @property
    def example(self) -> str:
        """The error text of the latest letter, as written."""
        latest = max(self.letters, key=lambda letter: (letter.dead_at is not None, letter.dead_at or 0))
        return latest.record.error if latest.record else UNRECORDED_TEXT

    @property
    def reason(self) -> str | None:
        """The refusal's reason when the group's letters were refused (unauthenticated, malformed...)."""
        return self.cause.reason

    def as_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "contract": self.cause.contract,
            "error_kind": self.error_kind,
            "error_type": self.cause.error_type,
            "reason": self.cause.reason,
            "pattern": self.cause.pattern,
            "example": self.example,
            "count": len(self.letters),
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "queues": self.queues,
            "not_in_broker": sum(1 for letter in self.letters if letter.in_broker is False),
            "letters": [letter.summary() for letter in self.letters],
        }


class AmbiguousId(LookupError):
    """Raised when an id prefix names more than one dead letter."""


class DeadLetterQueue:
    """The dead letters of every side and queue, read together."""

    def __init__(self, ledgers: DeadLetterLedgers, broker: BrokerQueues | None) -> None:
        self.ledgers = ledgers
        self.broker = broker

    def letters(self) -> list[DeadLetter]:
        """Every message dead now, oldest first."""
        records = self.ledgers.dead()
        latest: dict[tuple[str, bool], DeadLetterRecord] = {}
        for record in records:  # oldest first: a later death of the same message wins
            # ... but a refused stranger reusing a real letter's id is a letter of its own: it must
            # not hide the real one from the operator, nor be taken for it.
            latest[(record.message_id, refusal_reason(record.error_type) is not None)] = record
        copies = self._broker_copies({record.queue_name for record in records})
        letters = [
            DeadLetter(record.message_id, record.queue_name, record, tuple(copies.pop(record.message_id, ())), self.broker is not None)
            for record in latest.values()
        ]
        letters += [
            DeadLetter(message_id, found[0].queue_name, None, tuple(found), True)
            for message_id, found in copies.items()
        ]
        return sorted(letters, key=lambda letter: (letter.dead_at is None, letter.dead_at or 0, letter.message_id))

    def groups(self, letters: Iterable[DeadLetter] | None = None) -> list[DeadLetterGroup]:
        """Letters by cause, the largest group first."""
        by_cause: dict[Cause, list[DeadLetter]] = defaultdict(list)
        for letter in self.letters() if letters is None else letters:
            by_cause[letter.cause].append(letter)
        groups = [DeadLetterGroup(cause, tuple(found)) for cause, found in by_cause.items()]
        return sorted(groups, key=lambda group: (-len(group.letters), group.group_id))

    def group(self, group_id: str, letters: Iterable[DeadLetter] | None = None) -> DeadLetterGroup | None:
        for group in self.groups(letters):
            if group.group_id == group_id.lower():
                return group
        return None

    def find(self, wanted: str, letters: Iterable[DeadLetter] | None = None) -> DeadLetter | None:
        """The dead letter whose message id is ``wanted`` or starts with it; raises AmbiguousId."""
        return _by_prefix(wanted, list(self.letters() if letters is None else letters), lambda letter: letter.message_id)

    def history(self, wanted: str) -> list[DeadLetterRecord]:
        """Every row (dead or resolved) of the message whose id is ``wanted`` or starts with it."""
        message_id = _by_prefix(wanted, sorted(self.ledgers.message_ids()), lambda message_id: message_id)
        return self.ledgers.history([message_id]) if message_id else []

    def _broker_copies(self, extra_queues: set[str]) -> dict[str, list[BrokerLetter]]:
        if self.broker is None:
            return {}
        names = [queue.name for queue in all_queues()]
        names += sorted(extra_queues - set(names))
        copies: dict[str, list[BrokerLetter]] = defaultdict(list)
        for name in names:
            for copy in self.broker.dead_letters(name):
                copies[copy.message_id].append(copy)
        return copies


def _by_prefix(wanted: str, candidates: list[Any], key: Any) -> Any:
    wanted = wanted.strip().lower()
    exact = [each for each in candidates if key(each).lower() == wanted]
    if exact:
        return exact[0]
    matches = [each for each in candidates if key(each).lower().startswith(wanted)]
    if len(matches) > 1:
        raise AmbiguousId(f"{wanted!r} names {len(matches)} dead letters: give more of the message id")
    return matches[0] if matches else None


def envelope_of(body: str) -> Any:
    """The body as JSON when it is JSON (an envelope, normally); otherwise its start as text, capped,
    non-printable characters escaped (:func:`shared.untrusted_json.shown`). Never raises."""
    reading = read(body)
    return reading.value if reading.is_json else shown(body)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
