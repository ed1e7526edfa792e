"""The dead letters of the whole system, grouped by cause, as ``dualwrite dlq`` shows them.

The sides' ``dead_letters`` tables say why each message died; the broker's ``<queue>.XQ`` holds
the message itself until it expires. A letter is listed from its row, cross-checked against the
broker: one whose broker copy has expired is still listed (and can still be replayed, from the
row's copy of the envelope), flagged ``in_broker: false``. A broker copy without a row (the
side could not record the reason) is listed too, under a cause of its own.

Each row is a letter, paired with exactly its own broker copy (:func:`pair_copies`): the one whose
bytes have the digest the side recorded with the reason (``copy_digest``), never merely one with
the same message id, because message ids are the senders' to choose and two letters may share one
(a refused stranger reusing a real message's id, a careless sender). Each letter has an id of its
own, ``<side>:<row>`` (``broker:<digest>`` for a copy without a row), by which an operator names it
when its message id names several.

Whatever a letter's body holds (not JSON, not UTF-8, JSON nested 100,000 deep, fields of the
wrong types), it is listed, grouped and shown: bodies are read with :mod:`shared.untrusted_json`,
and one that is not JSON is shown as text, capped, its non-printable characters escaped.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
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
#: A letter without a row is named ``broker:`` and the start of its copy's digest, this long.
_DIGEST_SHOWN = 12
#: A letter id as an operator types it: ``finance:17``, or ``broker:`` and at least 6 hex digits.
LETTER_ID = re.compile(r"^(?:(finance|dataverse|bridge):(\d{1,18})|broker:([0-9a-f]{6,64}))$")


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
    def letter_id(self) -> str:
        """The letter's own id: ``<side>:<row>`` of its row, else ``broker:`` and the start of its copy's digest.

        Stable from one run to the next (rows are never deleted), and apart from any other letter's
        even when both carry one message id.
        """
        if self.record is not None:
            return letter_id_of(self.record)
        return f"broker:{self.broker_copies[0].digest[:_DIGEST_SHOWN]}" if self.broker_copies else "broker:?"

    @property
    def digest(self) -> str | None:
        """The digest of this letter's broker copy: the row's record of it, else the copy's own."""
        if self.record is not None and self.record.copy_digest:
            return self.record.copy_digest
        return self.broker_copies[0].digest if self.broker_copies else None

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
            "letter": self.letter_id,
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
    """Raised when an id (or its first characters) names more than one dead letter."""


def letter_id_of(record: DeadLetterRecord) -> str:
    """The id of the letter a row records: ``<side>:<row>``."""
    return f"{record.side}:{record.row_id}"


def pair_copies(
    records: Sequence[DeadLetterRecord], copies: Sequence[BrokerLetter]
) -> tuple[list[list[BrokerLetter]], list[BrokerLetter]]:
    """Each row's own broker copies (by the row's position), and the copies no row claims.

    A row is paired only with copies of its own queue. A row that recorded its copy's digest gets
    the one copy with exactly those bytes (rows and copies oldest first: byte-identical copies, the
    same message dead twice, go one to a row). A row recorded before digests were kept gets a copy
    with its message id that carries its own envelope; copies with that id left over go to the
    latest such row of the id, as all copies of an id went to its latest row before. A copy no row
    claims (another sender's bytes under a real letter's id, say) is a letter of its own.
    """
    own: list[list[BrokerLetter]] = [[] for _ in records]
    free = list(copies)
    taken: set[int] = set()

    def claim(index: int, copy_at: int) -> None:
        own[index].append(free[copy_at])
        taken.add(copy_at)

    by_digest: dict[tuple[str, str], list[int]] = defaultdict(list)
    for at, copy in enumerate(free):
        by_digest[(copy.queue_name, copy.digest)].append(at)
    legacy: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        if record.copy_digest:
            found = by_digest.get((record.queue_name, record.copy_digest))
            if found:
                claim(index, found.pop(0))
        else:
            legacy[(record.queue_name, record.message_id)].append(index)
    for (queue_name, message_id), indices in legacy.items():
        candidates = [
            at for at, copy in enumerate(free)
            if at not in taken and copy.queue_name == queue_name and copy.message_id == message_id
        ]
        for index in indices:
            same = next((at for at in candidates if at not in taken and free[at].body == records[index].body), None)
            if same is not None:
                claim(index, same)
        for at in candidates:
            if at not in taken:
                claim(indices[-1], at)
    return own, [copy for at, copy in enumerate(free) if at not in taken]


class DeadLetterQueue:
    """The dead letters of every side and queue, read together."""

    def __init__(self, ledgers: DeadLetterLedgers, broker: BrokerQueues | None) -> None:
        self.ledgers = ledgers
        self.broker = broker

    def letters(self) -> list[DeadLetter]:
        """Every letter dead now, oldest first: each dead row with its own broker copy, then the
        copies no row claims (byte-identical ones together).

        Every dead row is a letter of its own, even when another carries the same message id: a
        refused stranger reusing a real letter's id must neither hide the real one nor be taken for
        it, and purging or replaying one must not touch the other's copy.
        """
        records = self.ledgers.dead()
        copies = self._broker_copies({record.queue_name for record in records})
        own, unclaimed = pair_copies(records, copies)
        checked = self.broker is not None
        letters = [
            DeadLetter(record.message_id, record.queue_name, record, tuple(found), checked)
            for record, found in zip(records, own)
        ]
        alike: dict[tuple[str, str], list[BrokerLetter]] = defaultdict(list)
        for copy in unclaimed:
            alike[(copy.queue_name, copy.digest)].append(copy)
        letters += [DeadLetter(found[0].message_id, found[0].queue_name, None, tuple(found), True) for found in alike.values()]
        return sorted(
            letters, key=lambda letter: (letter.dead_at is None, letter.dead_at or 0, letter.message_id, letter.letter_id)
        )

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
        """The dead letter named by ``wanted``: its letter id (``finance:17``, ``broker:3fa9c2e1``),
        or its message id or the first characters of it; None when none is.

        Raises AmbiguousId when ``wanted`` names several: the start of several message ids (give
        more of it), or one message id carried by several letters (the error lists their letter ids).
        """
        candidates = list(self.letters() if letters is None else letters)
        by_letter_id = _by_letter_id(wanted, candidates)
        if by_letter_id is not None:
            return by_letter_id
        message_id = _by_prefix(wanted, sorted({letter.message_id for letter in candidates}), lambda found: found)
        if message_id is None:
            return None
        named = [letter for letter in candidates if letter.message_id == message_id]
        if len(named) > 1:
            raise AmbiguousId(ambiguity(message_id, named))
        return named[0]

    def history(self, wanted: str) -> list[DeadLetterRecord]:
        """Every row (dead or resolved) of the message whose id is ``wanted`` or starts with it."""
        message_id = _by_prefix(wanted, sorted(self.ledgers.message_ids()), lambda message_id: message_id)
        return self.ledgers.history([message_id]) if message_id else []

    def _broker_copies(self, extra_queues: set[str]) -> list[BrokerLetter]:
        """Every copy in the dead-letter queues of the topology and of the rows' queues, queue by queue."""
        if self.broker is None:
            return []
        names = [queue.name for queue in all_queues()]
        names += sorted(extra_queues - set(names))
        return [copy for name in names for copy in self.broker.dead_letters(name)]


def ambiguity(message_id: str, letters: Sequence[DeadLetter]) -> str:
    """What an operator reads when one message id names several dead letters, and how to choose."""
    described = "; ".join(
        f"{letter.letter_id} ({_what(letter)}, {letter.queue_name}, dead {_iso(letter.dead_at) or '?'}, "
        f"in broker: {'?' if letter.in_broker is None else ('yes' if letter.in_broker else 'no')})"
        for letter in letters
    )
    return (
        f"message id {message_id} names {len(letters)} dead letters (a sender reused it): "
        f"name one by its letter id instead: {described}"
    )


def _what(letter: DeadLetter) -> str:
    if letter.record is None:
        return UNRECORDED
    reason = letter.reason
    return f"refused as {reason}" if reason else letter.record.error_type


def _by_letter_id(wanted: str, letters: list[DeadLetter]) -> DeadLetter | None:
    """The letter whose letter id is ``wanted`` (``broker:`` ids by their first digits); None when none is."""
    wanted = wanted.strip().lower()
    found = LETTER_ID.match(wanted)
    if found is None:
        return None
    if found.group(3) is None:
        return next((letter for letter in letters if letter.record is not None and letter.letter_id == wanted), None)
    digest = found.group(3)
    matches = [letter for letter in letters if letter.record is None and (letter.digest or "").startswith(digest)]
    if len(matches) > 1:
        raise AmbiguousId(f"{wanted!r} names {len(matches)} dead letters: give more of the digest")
    return matches[0] if matches else None


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
