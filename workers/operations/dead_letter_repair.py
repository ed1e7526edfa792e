"""Repairing dead letters: replay (as they were, or edited) and purge, each written to the audit log.

A replay sends the letter back to its original queue under the same message id (the consumer's
inbox still makes a second delivery a no-op), after its contract is upcast to the newest version
and validated again: the envelope sent is the newest version. A letter that still fails validation
is not sent; it stays dead and its new reason is recorded. The body replayed comes from the
side's row, so a letter whose broker copy has expired can be replayed too.

Order of the steps, per letter: send, then take the broker's copy off ``<queue>.XQ``, then mark
the row. A crash in between leaves the letter listed as dead; replaying it again sends a
duplicate that the inbox ignores. Nothing is lost either way.

A letter's broker copy is the one paired with its row (``dead_letter_queue.pair_copies``: by the
digest of its bytes, not by message id), found again in the queue's dead letters when they are
held for the repair: replaying or purging one letter never takes another's copy, even when a
stranger sent that other under the same message id.

Some letters are never sent back, because a replay is signed with the operators' key (heard on
every queue) and would vouch for whatever it carries:

- a ``Malformed`` letter is bytes that were never a message: it can only be purged;
- an ``Unauthenticated`` or ``Forbidden`` one came from a sender the queue does not hear, and one
  dead without a recorded reason was never checked at all: they are sent back only when the
  operator says they checked the sender (``trust_sender``, ``dualwrite dlq replay --trust-sender``),
  else replaying would launder a forgery;
- one whose row kept only the start of a huge body, once the broker's copy is gone.

A replay skips them (listed in its report, rows untouched); an edit of one raises NotReplayable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.registry import ContractRegistry, describe_validation_error, payload_of
from shared.signatures import Signer
from shared.dead_letters import body_cut_size
from shared.errors import DualWriteError, Forbidden, InvalidContract, Malformed, PermanentError, Unauthenticated
from shared.logging import get_logger
from shared.untrusted_json import parse_object
from workers.operations.audit import AuditLog
from workers.operations.broker_queues import BrokerLetter, BrokerQueues, HeldDeadLetters
from workers.operations.dead_letter_queue import DeadLetter, pair_copies
from workers.operations.dead_letter_reports import REPLAY_OPTION
from workers.operations.dead_letter_records import DeadLetterLedgers, Outcome
from workers.operations.failure_causes import refusal_reason

log = get_logger(__name__)

#: progress(done, total), called after each letter.
Progress = Callable[[int, int], None]

#: Refusals whose sender the queue does not hear: sent back only when the operator trusts the sender.
UNTRUSTED_SENDER = frozenset({Unauthenticated.__name__, Forbidden.__name__})
TRUST_SENDER_OPTION = "--trust-sender"


class NotReplayable(DualWriteError):
    """Raised when a dead letter may not be sent back (see the module's notes); nothing was sent."""


def why_not_replayable(letter: DeadLetter, *, trust_sender: bool = False) -> str | None:
    """Why the letter may not be sent back to its queue; None when it may."""
    error_type = letter.record.error_type if letter.record is not None else None
    if error_type == Malformed.__name__:
        return "malformed bytes, not a message (it was never heard): it can only be purged"
    if letter.body_cut and not letter.broker_copies:
        size = body_cut_size(letter.record.body) if letter.record is not None else None
        return (
            f"its body ({size or 0:,} bytes) was cut when recorded and the broker's copy is gone: "
            "it can only be purged (the sender can send it again)"
        )
    if trust_sender:
        return None
    if error_type in UNTRUSTED_SENDER:
        return (
            f"refused as {refusal_reason(error_type)}: sending it back would sign it with the operators' key; "
            f"check who sent it, then give {TRUST_SENDER_OPTION} (or purge it)"
        )
    if letter.record is None:
        return (
            "dead without a recorded reason, its sender never checked: sending it back would sign it with the "
            f"operators' key; check who sent it, then give {TRUST_SENDER_OPTION} (or purge it)"
        )
    return None


@dataclass(frozen=True)
class Refusal:
    message_id: str
    error_type: str
    error: str
    #: The letter's own id (``finance:17``): its message id may be another letter's too.
    letter: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"message_id": self.message_id, "letter": self.letter, "error_type": self.error_type, "error": self.error}


@dataclass(frozen=True)
class Skipped:
    """A letter a replay did not send (it may not be sent back): its row and broker copy untouched."""

    message_id: str
    error_type: str | None
    why: str
    letter: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {
            "message_id": self.message_id,
            "letter": self.letter,
            "error_type": self.error_type,
            "reason": refusal_reason(self.error_type),
            "why": self.why,
        }


@dataclass
class RepairReport:
    """What a replay, edit or purge did."""

    action: str
    target: str
    #: The message ids of the letters done, and (in the same order) their letter ids.
    done: list[str] = field(default_factory=list)
    letters: list[str] = field(default_factory=list)
    #: Letters not sent because they still do not validate; they stay dead with this reason.
    refused: list[Refusal] = field(default_factory=list)
    #: Letters not sent because they may not be sent back (malformed, an untrusted sender...).
    skipped: list[Skipped] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "count": len(self.done),
            "message_ids": self.done,
            "letters": self.letters,
            "refused": [refusal.as_json() for refusal in self.refused],
            "skipped": [skipped.as_json() for skipped in self.skipped],
        }


class DeadLetterRepair:
    """Replays, edits and purges dead letters on one broker, for one operator."""

    def __init__(
        self,
        ledgers: DeadLetterLedgers,
        broker: BrokerQueues,
        registry: ContractRegistry,
        audit: AuditLog,
        operator: str,
        *,
        signer: Signer,
    ) -> None:
        self.ledgers = ledgers
        self.broker = broker
        self.registry = registry
        self.audit = audit
        self.operator = operator
        #: Replays and edits go out signed by the operators' key (heard on every queue): an edit
        #: changes the bytes, and a replay sends the envelope upcast to the newest version.
        self.signer = signer

    def replay(
        self, letters: list[DeadLetter], target: str, progress: Progress | None = None, *, trust_sender: bool = False
    ) -> RepairReport:
        """Send each letter back to its queue as the newest version of its contract.

        Letters that may not be sent back are skipped (``why_not_replayable``); ``trust_sender`` is the
        operator's word that they checked the sender of the refused or unrecorded ones.
        """
        report = RepairReport("replay", target)
        sendable = []
        for letter in letters:
            why = why_not_replayable(letter, trust_sender=trust_sender)
            if why is None:
                sendable.append(letter)
            else:
                report.skipped.append(
                    Skipped(letter.message_id, letter.record.error_type if letter.record else None, why, letter.letter_id)
                )
        with self._audited(report, **({"trust_sender": True} if trust_sender else {})):
            for queue_name, held, letter, copies in self._held(sendable, progress):
                try:
                    body = newest_version_of(self.registry, letter.body)
                except PermanentError as error:
                    self._refuse(letter, copies, error, report)
                    continue
                self._send_back(queue_name, held, letter, copies, body, Outcome.REPLAYED)
                report.done.append(letter.message_id)
                report.letters.append(letter.letter_id)
        return report

    def edit(self, letter: DeadLetter, correction: "Correction", target: str, *, trust_sender: bool = False) -> RepairReport:
        """Replay a corrected payload (or whole envelope) in place of the original; both are kept.

        Nothing is sent, recorded or audited when the correction does not validate (PermanentError)
        or the letter may not be sent back (NotReplayable): the error says why.
        """
        why = why_not_replayable(letter, trust_sender=trust_sender)
        if why is not None:
            raise NotReplayable(f"{letter.message_id} cannot be edited: {why}")
        body = newest_version_of(self.registry, corrected_envelope(letter, correction))
        report = RepairReport("edit", target)
        with self._audited(report, source=correction.source, **({"trust_sender": True} if trust_sender else {})):
            for queue_name, held, _letter, copies in self._held([letter], None):
                self._send_back(queue_name, held, letter, copies, body, Outcome.EDITED)
            report.done.append(letter.message_id)
            report.letters.append(letter.letter_id)
        return report

    def purge(self, letters: list[DeadLetter], target: str, progress: Progress | None = None) -> RepairReport:
        """Take the letters off the broker for good; their rows stay, marked purged."""
        report = RepairReport("purge", target)
        with self._audited(report):
            for _queue_name, held, letter, copies in self._held(letters, progress):
                held.remove(copies)
                if letter.record is not None:
                    self.ledgers.resolve(letter.record, Outcome.PURGED, self.operator)
                report.done.append(letter.message_id)
                report.letters.append(letter.letter_id)
        return report

    def _held(
        self, letters: list[DeadLetter], progress: Progress | None
    ) -> Iterable[tuple[str, HeldDeadLetters, DeadLetter, list[BrokerLetter]]]:
        """Each letter with its queue's dead letters held and its own copies among them, one queue at
        a time; progress after each."""
        by_queue: dict[str, list[DeadLetter]] = defaultdict(list)
        for letter in letters:
            by_queue[letter.queue_name].append(letter)
        handled = 0
        for queue_name, queued in by_queue.items():
            with self.broker.hold_dead_letters(queue_name) as held:
                for letter, copies in zip(queued, self._own_copies(queue_name, held, queued)):
                    yield queue_name, held, letter, copies
                    handled += 1
                    if progress is not None:
                        progress(handled, len(letters))

    def _own_copies(self, queue_name: str, held: HeldDeadLetters, letters: list[DeadLetter]) -> list[list[BrokerLetter]]:
        """Each letter's own copies among those held, paired as ``dlq list`` pairs them (with the rows
        dead now): a letter with a row gets the copy of its row, one without the copies of its bytes."""
        records = [record for record in self.ledgers.dead() if record.queue_name == queue_name]
        own, unclaimed = pair_copies(records, held.letters)
        found = []
        for letter in letters:
            if letter.record is not None:
                index = next((at for at, record in enumerate(records) if record == letter.record), None)
                found.append(list(own[index]) if index is not None else [])
            else:
                found.append([copy for copy in unclaimed if copy.digest == letter.digest])
        return found

    def _send_back(
        self, queue_name: str, held: HeldDeadLetters, letter: DeadLetter, copies: list[BrokerLetter], body: str, outcome: str
    ) -> None:
        # Marked as a replay in the dramatiq message: a table map's target side reports it to the bridge once applied.
        self.broker.enqueue(
            queue_name, letter.actor_name, letter.message_id, body, signer=self.signer, options={REPLAY_OPTION: outcome}
        )
        held.remove(copies)
        if letter.record is not None:
            self.ledgers.resolve(letter.record, outcome, self.operator, replayed_body=body)
        log.info("dead letter sent back", message_id=letter.message_id, letter=letter.letter_id, queue=queue_name, outcome=outcome)

    def _refuse(self, letter: DeadLetter, copies: list[BrokerLetter], error: PermanentError, report: RepairReport) -> None:
        record = letter.record
        if record is not None:
            if record.copy_digest is None and len(copies) == 1:
                # A row from before digests were kept: its new row names the copy it was paired with.
                record = replace(record, copy_digest=copies[0].digest)
            self.ledgers.supersede(record, error, self.operator)
        report.refused.append(Refusal(letter.message_id, type(error).__name__, str(error), letter.letter_id))
        log.warning("dead letter still invalid, left dead", message_id=letter.message_id, error=str(error))

    def _audited(self, report: RepairReport, **details: Any) -> "_AuditOnExit":
        return _AuditOnExit(self.audit, self.operator, report, details)


class _AuditOnExit:
    """Writes the audit row when the repair ends, with what was done even if it stopped half-way."""

    def __init__(self, audit: AuditLog, operator: str, report: RepairReport, details: dict[str, Any]) -> None:
        self.audit, self.operator, self.report, self.details = audit, operator, report, details

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, _tb: Any) -> None:
        report = self.report
        if not report.done and not report.refused and error is None:
            return
        details = {
            "message_ids": report.done, "letters": report.letters, "refused": [r.as_json() for r in report.refused], **self.details
        }
        if report.skipped:
            details["skipped"] = [skipped.as_json() for skipped in report.skipped]
        if error is not None:
            details["stopped_by"] = f"{type(error).__name__}: {error}"
        self.audit.record(self.operator, report.action, report.target, len(report.done), details)


def newest_version_of(registry: ContractRegistry, body: str) -> str:
    """The envelope upcast to the newest version of its contract and validated; raises PermanentError."""
    decoded = registry.decode(body)
    envelope = decoded.envelope.model_copy(update={"version": decoded.version, "payload": payload_of(decoded.payload)})
    return envelope.model_dump_json()


@dataclass(frozen=True)
class Correction:
    """An operator's correction of a dead letter: a payload, or a whole envelope (a document with ``payload``)."""

    document: dict[str, Any]
    #: Where it came from (a file name), for the audit log.
    source: str
    #: The version the payload is written in (default: the original's).
    version: int | None = None
    legal_entity: str | None = None


def corrected_envelope(letter: DeadLetter, correction: Correction) -> str:
    """The letter's envelope with the correction applied; raises InvalidContract when it is no envelope.

    A whole envelope replaces the original but keeps its message id; a payload replaces only the
    payload. Either way ``version`` and ``legal_entity``, when given, override the document's.
    """
    if "payload" in correction.document:
        corrected = {**correction.document, "message_id": letter.message_id}
    else:
        corrected = {**(parse_object(letter.body) or {}), "payload": correction.document}
    if correction.version is not None:
        corrected["version"] = correction.version
    if correction.legal_entity is not None:
        corrected["legal_entity"] = correction.legal_entity
    try:
        return Envelope.model_validate(corrected).model_dump_json()
    except ValidationError as error:
        raise InvalidContract(describe_validation_error(error, "envelope.")) from None

