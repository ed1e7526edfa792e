"""How waiting outbox rows leave: the rows of many business documents combined into few messages.

Every outbox row is one *part*: the rows one transaction emitted for one business document, with
its own message id, correlation id and causation id. When several parts wait for the same queue,
contract version, sender and legal entity, they leave as one message whose ``payload.rows`` are
their rows in order and whose ``parts`` say whose rows are whose (see ``contracts.envelope.Part``).
A part waiting alone leaves as it was written, byte for byte: at light load nothing changes.

A message never holds more than ``MAX_ROWS`` rows, ``MAX_PARTS`` parts or ``max_bytes`` of parts,
nor two rows with one integration key (the receiver would refuse the batch, and the later change
must apply after the earlier one): such a part starts the next message of its group.

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

from contracts.batch import MAX_ROWS
from contracts.envelope import MAX_PARTS
from shared.outbox_marks import Outgoing

#: A combined message's id derives from the ids of its parts: the same parts, the same id.
BATCH_NAMESPACE = uuid.UUID("0b6f7c9e-5a3d-4e21-8f4b-9d2c1e7a6b35")

#: The parts of one message stay under this many bytes (the consumers refuse far bigger ones).
DEFAULT_MAX_BYTES = 1 << 20

KeyFields = Callable[[str, int], tuple[str, ...]]
"""KeyFields(contract, version): the row fields that form the integration key."""


@dataclass(frozen=True)
class WireMessage:
    """One message as the broker takes it, and the outbox rows (parts) it carries."""

    queue_name: str
    actor_name: str
    message_id: str
    body: str
    part_ids: tuple[str, ...]


@dataclass
class _Batch:
    parts: list[Outgoing] = field(default_factory=list)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    rows: int = 0
    size: int = 0


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
        envelope = json.loads(part.body)
        payload = envelope.get("payload")
        if not isinstance(payload, dict) or set(payload) != {"rows"}:
            # A payload with more than rows (an initial sync page) is not a batch of rows: alone.
            yield alone(part)
            continue
        rows = payload["rows"]
        keys = _keys(rows, key_fields(part.contract, part.version))
        if batch.parts and not _fits(batch, part, len(rows), keys, max_bytes):
            yield _message(batch)
            batch = _Batch()
        batch.parts.append(part)
        batch.envelopes.append(envelope)
        batch.keys.update(keys)
        batch.rows += len(rows)
        batch.size += len(part.body)
    if batch.parts:
        yield _message(batch)


def _fits(batch: _Batch, part: Outgoing, rows: int, keys: set[tuple[Any, ...]], max_bytes: int) -> bool:
    return (
        batch.rows + rows <= MAX_ROWS
        and len(batch.parts) < MAX_PARTS
        and batch.size + len(part.body) <= max_bytes
        and batch.keys.isdisjoint(keys)
    )


def _keys(rows: list[Any], fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The rows' integration keys, case folded (the receiver refuses case variants in one batch too)."""
    if not fields:
        return set()
    return {
        tuple(value.lower() if isinstance(value, str) else value for value in (row.get(name) for name in fields))
        for row in rows
        if isinstance(row, dict)
    }


def alone(part: Outgoing) -> WireMessage:
    """A part that leaves on its own: the envelope as it was written."""
    return WireMessage(part.queue_name, part.actor_name, part.message_id, part.body, (part.message_id,))


def _message(batch: _Batch) -> WireMessage:
    if len(batch.parts) == 1:
        return alone(batch.parts[0])
    first = batch.envelopes[0]
    part_ids = tuple(part.message_id for part in batch.parts)
    message_id = str(uuid.uuid5(BATCH_NAMESPACE, ",".join(part_ids)))
    envelope = {
        "message_id": message_id,
        "contract": first["contract"],
        "version": first["version"],
        "source": first["source"],
        "legal_entity": first.get("legal_entity"),
        # Logs of the whole message carry the first document's correlation id; each part has its own.
        "correlation_id": first["correlation_id"],
        "causation_id": None,
        "occurred_at": first["occurred_at"],
        "payload": {"rows": [row for envelope in batch.envelopes for row in envelope["payload"]["rows"]]},
        "parts": [
            {
                "message_id": envelope["message_id"],
                "correlation_id": envelope["correlation_id"],
                "causation_id": envelope.get("causation_id"),
                "rows": len(envelope["payload"]["rows"]),
            }
            for envelope in batch.envelopes
        ],
    }
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)
    first_part = batch.parts[0]
    return WireMessage(first_part.queue_name, first_part.actor_name, message_id, body, part_ids)


def carried_parts(message_id: str, body: str) -> tuple[str, ...]:
    """The ids of the parts a sent message carries: its ``parts``, or the message itself."""
    try:
        parts = json.loads(body).get("parts")
    except (ValueError, AttributeError, RecursionError):
        return (message_id,)
    if not isinstance(parts, list):
        return (message_id,)
    return tuple(str(part.get("message_id")) for part in parts if isinstance(part, dict))
