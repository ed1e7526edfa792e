"""How waiting outbox rows leave: the rows of many business documents combined into few messages.

Every outbox row is one *part*: the rows one transaction emitted for one business document, with
its own message id, correlation id and causation id. When several parts wait for the same queue,
contract version, sender and legal entity, they leave as one message whose ``payload.rows`` are
their rows in order and whose ``parts`` say whose rows are whose (see ``contracts.envelope.Part``).
A part waiting alone leaves as it was written, byte for byte: at light load nothing changes.

A message never holds more than ``MAX_ROWS`` rows, ``MAX_PARTS`` parts or ``max_bytes`` of parts,
nor two rows with one integration key (the receiver would refuse the batch, and the later change
must apply after the earlier one): such a part starts the next message of its group.

A combined message carries each part's rows on as the text emit wrote them (``_read_as_written``):
combining costs parsing the parts, not writing their rows again.

The receiver applies each part once by its own id (``shared.unit_of_work``), so how parts are
grouped may differ from one send to the next (a sweeper's resend, a redelivery of one of them):
a part already applied is skipped and the others are applied. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json

from contracts.batch import MAX_ROWS
from contracts.envelope import MAX_PARTS, Envelope
from shared.outbox_marks import Outgoing

#: A combined message's id derives from the ids of its parts: the same parts, the same id.
BATCH_NAMESPACE = uuid.UUID("0b6f7c9e-5a3d-4e21-8f4b-9d2c1e7a6b35")

#: The parts of one message stay under this many bytes (the consumers refuse far bigger ones).
DEFAULT_MAX_BYTES = 1 << 20

KeyFields = Callable[[str, int], tuple[str, ...]]
"""KeyFields(contract, version): the row fields that form the integration key."""

#: The envelope's fields before ``payload``, in the order ``Envelope.model_dump_json`` writes them:
#: a combined message's head is its first part's (but its ids).
_HEAD_FIELDS = tuple(Envelope.model_fields)[: tuple(Envelope.model_fields).index("payload")]
#: What follows an envelope's head, up to its first row, and what follows its last row, up to its
#: ``parts``, as the envelope's writers write them (``Envelope.model_dump_json`` and ``_WRITER``).
_ROWS_START, _PARTS_START = ',"payload":{"rows":[', ']},"parts":'
#: How the envelope of a part emit wrote ends, after its last row.
_ROWS_END = _PARTS_START + "null}"

#: JSON as the envelope's writer writes it: no spaces, characters beyond ASCII as they are.
_WRITER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class WireMessage:
    """One message as the broker takes it, and the outbox rows (parts) it carries."""

    queue_name: str
    actor_name: str
    message_id: str
    body: str
    part_ids: tuple[str, ...]


@dataclass(frozen=True)
class _Rows:
    """A part's rows, parsed and as JSON text (brackets off), and its envelope's head."""

    head: dict[str, Any]
    rows: list[Any]
    text: str


@dataclass
class _Batch:
    parts: list[Outgoing] = field(default_factory=list)
    #: The first part's head: the combined message's, but its ids.
    head: dict[str, Any] = field(default_factory=dict)
    #: What the message's ``parts`` say of each part.
    described: list[dict[str, Any]] = field(default_factory=list)
    #: Each part's rows as JSON text, brackets off.
    texts: list[str] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    rows: int = 0
    size: int = 0

    def add(self, part: Outgoing, read: _Rows, keys: set[tuple[Any, ...]]) -> None:
        if not self.parts:
            self.head = read.head
        self.parts.append(part)
        self.described.append(
            {
                "message_id": read.head["message_id"],
                "correlation_id": read.head["correlation_id"],
                "causation_id": read.head.get("causation_id"),
                "rows": len(read.rows),
            }
        )
        self.texts.append(read.text)
        self.keys.update(keys)
        self.rows += len(read.rows)
        self.size += len(part.body)


def combine(
    outgoing: Sequence[Outgoing], key_fields: KeyFields, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[WireMessage]:
    """The messages that carry these outbox rows, in the order their first rows were written."""
    groups: dict[tuple[str, ...], list[Outgoing]] = {}
    for part in outgoing:
        groups.setdefault(part.group, []).append(part)
    messages: list[WireMessage] = []
    for parts in groups.values():
        messages.extend(_combined(parts, key_fields, max_bytes))
    return messages


def _combined(parts: list[Outgoing], key_fields: KeyFields, max_bytes: int) -> Iterable[WireMessage]:
    if len(parts) == 1:
        yield alone(parts[0])
        return
    batch = _Batch()
    for part in parts:
        read = _read(part.body)
        if read is None:
            # A payload with more than rows (an initial sync page) is not a batch of rows: alone.
            yield alone(part)
            continue
        keys = _keys(read.rows, key_fields(part.contract, part.version))
        if batch.parts and not _fits(batch, part, len(read.rows), keys, max_bytes):
            yield _message(batch)
            batch = _Batch()
        batch.add(part, read, keys)
    if batch.parts:
        yield _message(batch)


def _read(body: str) -> _Rows | None:
    """A part's rows and head; None when its payload is not a list of rows alone."""
    return _read_as_written(body) or _read_parsed(body)


def _read_as_written(body: str) -> _Rows | None:
    """A part's rows and head as emit writes them: the head's text, then the rows' text, each parsed
    on its own. The rows' text is kept and carried on: rows are most of a message, and writing them
    again would cost more than all the rest of combining. None when the body is not written so
    (the head's text checked against the head as ``_WRITER`` writes it, the rows' as a whole array).

    Parsed as the receiver parses envelopes (pydantic's parser, a third faster than ``json.loads``);
    what it does not take (a lone surrogate escape, deep nesting) is left to ``_read_parsed``.
    """
    start = body.find(_ROWS_START)
    if start < 0 or not body.endswith(_ROWS_END):
        return None
    text = body[start + len(_ROWS_START) : len(body) - len(_ROWS_END)]
    try:
        head, rows = from_json(body[:start] + "}"), from_json(f"[{text}]")
    except ValueError:
        return None
    if not isinstance(head, dict) or tuple(head) != _HEAD_FIELDS or _head_text(head) != body[:start]:
        return None
    return _Rows(head, rows, text)


def _read_parsed(body: str) -> _Rows | None:
    """A part's rows and head, from its whole body parsed (its rows then written again)."""
    envelope = json.loads(body)
    payload = envelope.get("payload")
    if not isinstance(payload, dict) or set(payload) != {"rows"} or not isinstance(payload["rows"], list):
        return None
    return _Rows(envelope, payload["rows"], _WRITER.encode(payload["rows"])[1:-1])


def _fits(batch: _Batch, part: Outgoing, rows: int, keys: set[tuple[Any, ...]], max_bytes: int) -> bool:
    return (
        batch.rows + rows <= MAX_ROWS
        and len(batch.parts) < MAX_PARTS
        and batch.size + len(part.body) <= max_bytes
        and batch.keys.isdisjoint(keys)
    )


def _keys(rows: list[Any], fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The rows' integration keys, case folded (the receiver refuses case variants in one batch too)."""
    if len(fields) == 1:  # most contracts' key, and three times as fast without the general case's iterators
        [name] = fields
        return {(_folded(row.get(name)),) for row in rows if isinstance(row, dict)}
    if not fields:
        return set()
    return {tuple(map(_folded, map(row.get, fields))) for row in rows if isinstance(row, dict)}


def _folded(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _head_text(head: dict[str, Any]) -> str:
    """An envelope's head as JSON text, its object left open for ``payload`` to follow."""
    return _WRITER.encode({name: head[name] for name in _HEAD_FIELDS})[:-1]


def alone(part: Outgoing) -> WireMessage:
    """A part that leaves on its own: the envelope as it was written."""
    return WireMessage(part.queue_name, part.actor_name, part.message_id, part.body, (part.message_id,))


def _message(batch: _Batch) -> WireMessage:
    if len(batch.parts) == 1:
        return alone(batch.parts[0])
    first = batch.head
    part_ids = tuple(part.message_id for part in batch.parts)
    message_id = str(uuid.uuid5(BATCH_NAMESPACE, ",".join(part_ids)))
    head = {
        "message_id": message_id,
        "contract": first["contract"],
        "version": first["version"],
        "source": first["source"],
        "legal_entity": first.get("legal_entity"),
        # Logs of the whole message carry the first document's correlation id; each part has its own.
        "correlation_id": first["correlation_id"],
        "causation_id": None,
        "occurred_at": first["occurred_at"],
    }
    first_part = batch.parts[0]
    return WireMessage(first_part.queue_name, first_part.actor_name, message_id, _envelope_text(head, batch), part_ids)


def _envelope_text(head: dict[str, Any], batch: _Batch) -> str:
    """The combined message's envelope: its parts' rows as they were written, between its head and its ``parts``."""
    rows = ",".join(text for text in batch.texts if text)  # a part without rows adds none
    return _head_text(head) + _ROWS_START + rows + _PARTS_START + _WRITER.encode(batch.described) + "}"


def carried_parts(message_id: str, body: str) -> tuple[str, ...]:
    """The ids of the parts a sent message carries: its ``parts``, or the message itself."""
    try:
        parts = json.loads(body).get("parts")
    except (ValueError, AttributeError, RecursionError):
        return (message_id,)
    if not isinstance(parts, list):
        return (message_id,)
    return tuple(str(part.get("message_id")) for part in parts if isinstance(part, dict))
