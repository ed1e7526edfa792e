"""A side that dead-letters a table map's message tells the bridge, through its outbox.

Finance and Dataverse consume the queues the bridge carries table maps on
(``<map>.bridge-to-<side>``). When one of them refuses such a message for good, its dead-letter
ledger records the letter and, in the same transaction, writes a ``map_failure_report`` to the
side's outbox for ``bridge.map-failures``: the report is sent with the letter or not at all, and
once committed it is never lost (sent from memory right after the commit, else by the outbox
sweeper). The bridge logs it as a failure of the map, with the side, the keys and the reason, and
applies the map's alert rules (``workers/bridge/map_failures.py``).

A letter an operator sends back (``dualwrite dlq replay`` or ``edit``) is marked as a replay in its
dramatiq message's options (``REPLAY_OPTION``). When the side then applies it, ``MapReplayWatch``
reports that as well (``applied_on_replay``), through the outbox too, and the bridge logs the map's
message as ``replayed``. That report is written right after the message's own transaction, not in
it (the consumer's unit of work is the hot path's): a crash in between leaves the replay applied
and unreported, which the side's inbox and ``dualwrite trace`` still show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from contracts.envelope import Envelope, Side
from contracts.map_failures import KEYS_REPORTED, MAP_FAILURE_REPORT, MapFailuresV1
from contracts.maps import map_declaration
from contracts.queues import BRIDGE_MAP_FAILURES, Queue
from shared.dead_letters import DeadLetter, describe_error, insert_dead_letter, record_dead_letter
from shared.logging import get_logger
from shared.outbox import Outbox
from shared.side_database import SideDatabase
from shared.untrusted_json import parse_object
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

#: The dramatiq message option that marks a dead letter sent back by an operator (its value: the
#: repair's outcome, ``replayed`` or ``edited``).
REPLAY_OPTION = "dualwrite_replay"


@dataclass(frozen=True)
class MapFailureReporter:
    """Records a dead letter of one of a side's table-map queues and reports it to the bridge."""

    side: Side
    queue: Queue
    database: SideDatabase
    relay: Outbox

    def __call__(self, letter: DeadLetter) -> None:
        try:
            report = MapFailuresV1(rows=[failure_report(self.side, self.queue, letter)])
        except Exception:
            # Never lose the letter's reason for want of a report: record it alone.
            log.exception("could not report the map's failure to the bridge", queue=self.queue.name)
            record_dead_letter(self.database, letter)
            return
        with UnitOfWork(self.database, self.side, relay_after_commit=True) as uow:
            insert_dead_letter(uow.connection, self.database, letter)
            uow.emit(
                BRIDGE_MAP_FAILURES,
                MAP_FAILURE_REPORT.name,
                MAP_FAILURE_REPORT.latest,
                report,
                correlation_id=letter.correlation_id or f"dead-letter:{letter.message_id}",
            )
            uow.commit()
        try:
            self.relay.send_committed(uow.outgoing)
        except Exception:
            # Committed: the outbox sweeper sends it.
            log.warning("map failure report left to the outbox sweeper", queue=self.queue.name, message_id=letter.message_id)

    def applied_on_replay(self, body: str) -> None:
        """The replayed (or edited) letter was applied: report it once (a second report of it has the same id)."""
        envelope = Envelope.model_validate_json(body)
        with UnitOfWork(self.database, self.side, cause=envelope, relay_after_commit=True) as uow:
            letters = self.database.messaging.dead_letters
            last = uow.connection.execute(
                select(letters.c.error_type, letters.c.error, letters.c.dead_at)
                .where(letters.c.message_id == str(envelope.message_id), letters.c.queue_name == self.queue.name)
                .order_by(letters.c.id.desc())
                .limit(1)
            ).one_or_none()
            row = {
                **failure_report(self.side, self.queue, None, body),
                "outcome": "applied_on_replay",
                "error_type": (last.error_type if last else "unknown")[:128],
                "error": (last.error if last else "no dead letter recorded")[:2000],
                "dead_at": _aware(last.dead_at) if last else datetime.now(UTC),
            }
            try:  # its id derives from the replayed message's: a second report of it is refused by the outbox
                uow.emit(
                    BRIDGE_MAP_FAILURES, MAP_FAILURE_REPORT.name, MAP_FAILURE_REPORT.latest, MapFailuresV1(rows=[row]),
                    correlation_id=envelope.correlation_id,
                )
                uow.commit()
            except IntegrityError:  # reported already (the replay was delivered twice)
                return
        try:
            self.relay.send_committed(uow.outgoing)
        except Exception:
            log.warning("replay report left to the outbox sweeper", queue=self.queue.name, message_id=str(envelope.message_id))


class MapReplayWatch(Middleware):
    """Reports a replayed table-map message its side applied (placed, like the ledger, before Retries)."""

    def __init__(self, reporters: dict[str, MapFailureReporter]) -> None:
        self.reporters = reporters

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result=None, exception=None) -> None:  # noqa: ANN001
        if exception is not None:
            return
        outcome = message.options.get(REPLAY_OPTION)
        reporter = self.reporters.get(message.queue_name) if outcome else None
        if reporter is None or not message.args or not isinstance(message.args[0], str):
            return
        try:
            reporter.applied_on_replay(message.args[0])
        except Exception:
            log.exception("could not report the replayed message to the bridge", queue=message.queue_name)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def failure_report(side: Side, queue: Queue, letter: DeadLetter | None, body: str | None = None) -> dict[str, Any]:
    """The report's row: which map, side and message, the rows' integration keys, and why."""
    assert queue.table_map is not None
    envelope = _envelope(letter.body if letter is not None else body or "")
    legal_entity = envelope.get("legal_entity") if isinstance(envelope.get("legal_entity"), str) else None
    if letter is None:
        return {
            "table_map": queue.table_map, "side": side.value, "queue": queue.name, "message_id": str(envelope.get("message_id")),
            "correlation_id": _text(envelope.get("correlation_id")), "causation_id": _text(envelope.get("causation_id")),
            "legal_entity": legal_entity[:8] if legal_entity else None,
            "keys": row_keys(queue.table_map, side, envelope, legal_entity),
        }
    return {
        "table_map": queue.table_map,
        "side": side.value,
        "queue": queue.name,
        "message_id": letter.message_id,
        "correlation_id": _text(envelope.get("correlation_id")),
        "causation_id": _text(envelope.get("causation_id")),
        "legal_entity": legal_entity[:8] if legal_entity else None,
        "keys": row_keys(queue.table_map, side, envelope, legal_entity),
        "error_type": type(letter.error).__name__[:128],
        "error": describe_error(letter.error)[:2000],
        "dead_at": datetime.now(UTC),
    }


def row_keys(map_name: str, side: Side, envelope: dict[str, Any], legal_entity: str | None) -> list[str]:
    """Each row's integration key as text, as the bridge logs it (``legal_entity=DEMF, project_id=P-1``)."""
    payload = envelope.get("payload")
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        return []
    declaration = map_declaration(map_name)
    names = declaration.key_as_named_by(side.value)
    keys = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        values = [legal_entity if name == "legal_entity" else row.get(name) for name in names]
        keys.append(", ".join(f"{logged}={value}" for logged, value in zip(declaration.key, values))[:1000])
    more = len(keys) - KEYS_REPORTED
    return keys[:KEYS_REPORTED] + ([f"... {more} more"] if more > 0 else [])


def _envelope(body: str) -> dict[str, Any]:
    return parse_object(body) or {}  # whatever the body: not JSON, nested 100,000 deep...


def _text(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) else None


def map_failure_reporters(runtimes: Any) -> dict[str, MapFailureReporter]:
    """One reporter per table-map queue that finance or Dataverse consumes, by queue name."""
    reporters = {}
    for runtime in runtimes:
        if runtime.spec.side is Side.BRIDGE:
            continue
        for consumer in runtime.consumers:
            queue = consumer.endpoint.queue
            if queue.table_map is not None:
                reporters[queue.name] = MapFailureReporter(runtime.spec.side, queue, runtime.database, runtime.relay)
    return reporters
