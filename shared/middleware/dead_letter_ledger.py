"""Writes the reason of every dead-lettered message to the consuming side's database."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping

import dramatiq
from dramatiq.middleware import Middleware

from shared.dead_letters import DeadLetter, received_digest, record_dead_letter
from shared.errors import Malformed, PermanentError, Refused
from shared.intake import KEPT_BYTES, Refusal
from shared.logging import get_logger
from shared.side_database import SideDatabase

log = get_logger(__name__)


class DeadLetterLedger(Middleware):
    """Must be added *before* dramatiq's Retries: "after" hooks run in reverse order, and Retries
    is the one that decides whether a failure is final."""

    def __init__(
        self, databases: Mapping[str, SideDatabase], recorders: Mapping[str, Callable[[DeadLetter], None]] | None = None
    ) -> None:
        self.databases = databases  # queue name -> the database of the side consuming it
        #: Queues whose letters are recorded otherwise: a table map's queue into finance or Dataverse,
        #: whose side reports the failure to the bridge with the letter (workers/operations/dead_letter_reports.py).
        self.recorders = recorders or {}

    def after_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, *, result=None, exception=None) -> None:  # noqa: ANN001
        if exception is None or not message.failed:
            return
        database = self.databases.get(message.queue_name)
        if database is None:
            return
        body = message.args[0] if message.args and isinstance(message.args[0], str) else json.dumps(message.args)
        retries = message.options.get("retries", 0)
        letter = DeadLetter(
            message_id=message.message_id,
            queue_name=message.queue_name,
            actor_name=message.actor_name,
            body=body,
            error=exception,
            traceback="".join(traceback.format_exception(exception, limit=30)),
            attempts=retries + 1 if isinstance(exception, PermanentError) else max(retries, 1),
            # which copy in the broker's dead letters is this letter's: its id is the sender's to reuse
            copy_digest=received_digest(message),
            **_envelope_fields(body),
        )
        try:
            # A refused stranger is not the map's failure: not reported to the bridge, not counted.
            recorder = None if isinstance(exception, Refused) else self.recorders.get(message.queue_name)
            if recorder is not None:
                recorder(letter)
            else:
                record_dead_letter(database, letter)
        except Exception:
            # The message is still in the broker's dead-letter queue; only the reason is lost.
            log.exception("could not record the dead letter's reason", queue=message.queue_name)
        log.warning(
            "message refused" if isinstance(exception, Refused) else "message dead-lettered",
            queue=message.queue_name,
            error_type=type(exception).__name__,
            error=str(exception),
            attempts=letter.attempts,
            **({"reason": exception.reason} if isinstance(exception, Refused) else {}),
        )

    def record_refusal(self, refusal: Refusal) -> None:
        """Bytes the intake refused (not a message at all): a dead letter of type Malformed, in the
        database of the side that consumes the queue. Raises when it cannot be written."""
        database = self.databases.get(refusal.queue_name)
        if database is None:
            raise LookupError(f"no side of this process consumes {refusal.queue_name!r}")
        size = f" ({refusal.size:,} bytes; the first {len(refusal.kept.encode('utf-8', 'replace')):,} kept)" if refusal.size > KEPT_BYTES else ""
        record_dead_letter(
            database,
            DeadLetter(
                message_id=refusal.message_id,
                queue_name=refusal.queue_name,
                actor_name="",
                body=refusal.kept,
                error=Malformed(refusal.reason + size),
                traceback=None,
                attempts=1,
                copy_digest=refusal.digest,
            ),
        )


def _envelope_fields(body: str) -> dict[str, str | None]:
    """Contract and correlation id when the body is a JSON object naming them as strings; whatever the
    body (not JSON, not UTF-8, nested 100,000 deep), it never raises. The row cuts them to fit."""
    from shared.untrusted_json import parse_object, text_field  # here: the rest of this module is the lead's

    envelope = parse_object(body)
    return {"contract": text_field(envelope, "contract"), "correlation_id": text_field(envelope, "correlation_id")}
