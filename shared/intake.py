"""What a queue takes in: bytes are a message of ours, or they are set aside with the reason.

dramatiq decodes what it fetches before any middleware runs. Bytes that are not a dramatiq
message (not JSON, the wrong shape) break its Redis consumer: the fetch is retried for ever, the
bytes stay "in flight", and the good messages fetched with them are stranded. A message for an
actor this worker does not have is dead-lettered without a reason, and one with the wrong
arguments is retried as if the fault could pass.

So our consumers (``shared.broker``) hand every fetched message to :meth:`Intake.check` first.
What passes is a dramatiq message addressed to this queue's actor with one argument, the envelope
as a JSON string, and only options this system sets. What does not pass is taken off the work
queue (acknowledged: it can never succeed) and recorded as a dead letter of type Malformed with
its reason and its first bytes (:data:`KEPT_BYTES`), through :attr:`Intake.on_refused`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from pydantic_core import from_json

from shared.dead_letters import COPY_DIGEST_ATTRIBUTE, copy_digest
from shared.errors import Malformed
from shared.logging import get_logger
from shared.untrusted_json import shown_value

log = get_logger(__name__)

#: How much of refused bytes a dead letter keeps; the rest is counted, not stored.
KEPT_BYTES = 64 * 1024

#: The dramatiq options a message of this system may carry: ours (signature, replay mark) and
#: those dramatiq's own Redis broker and retries set. Anything else (``max_age``, ``on_failure``,
#: ``pipe_target``, ``time_limit``...) would let whoever wrote the bytes steer the worker.
ALLOWED_OPTIONS: dict[str, tuple[type, ...]] = {
    "dualwrite_key": (str,),
    "dualwrite_signature": (str,),
    "dualwrite_replay": (str,),
    "redis_message_id": (str,),
    "retries": (int,),
    "traceback": (str,),
    "requeue_timestamp": (int,),
    "eta": (int, float),
}
FIELDS = {"queue_name", "actor_name", "args", "kwargs", "options", "message_id", "message_timestamp"}
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Refusal:
    """Bytes a queue would not take: where they were, why, and what of them is kept."""

    queue_name: str
    reason: str
    kept: str
    size: int
    #: The message's id when it had a readable one; otherwise one derived from the bytes.
    message_id: str
    #: shared/dead_letters.py ``copy_digest`` of the bytes (of all of them, not only those kept).
    digest: str | None = None

    @property
    def error(self) -> Malformed:
        return Malformed(self.reason)


def canonical_queue(queue_name: str) -> str:
    """``x.DQ`` (where retries wait) is queue ``x``."""
    return queue_name[:-3] if queue_name.endswith(".DQ") else queue_name


class Intake:
    """Checks fetched bytes against the actors of one broker; reports what it refuses."""

    def __init__(self, broker: dramatiq.Broker, max_bytes: int) -> None:
        self.broker = broker
        self.max_bytes = max_bytes
        #: Set by the runtime: records the dead letter and counts it. Unset, refusals are logged only.
        self.on_refused: Callable[[Refusal], None] | None = None

    def check(self, raw: bytes | str, queue_name: str) -> dramatiq.Message[Any]:
        """The message the bytes hold; raises Malformed with the reason when they hold none we take."""
        if len(raw) > self.max_bytes:
            raise Malformed(f"message of {len(raw):,} bytes is over the limit of {self.max_bytes:,}")
        fields = _json_object(raw)
        missing = sorted(FIELDS - fields.keys())
        if missing:
            raise Malformed(f"not a dramatiq message: no {', '.join(missing)}")
        unknown = sorted(fields.keys() - FIELDS)
        if unknown:
            raise Malformed(f"not a dramatiq message: unknown field(s) {_names(unknown)}")
        # A retry waits on ``x.DQ`` addressed to ``x.DQ``; dramatiq routes it back by that name.
        if fields["queue_name"] != queue_name:
            raise Malformed(f"addressed to queue {shown_value(fields['queue_name'])}, found on {queue_name!r}")
        queue = canonical_queue(queue_name)
        actor = self.broker.actors.get(fields["actor_name"]) if isinstance(fields["actor_name"], str) else None
        if actor is None or actor.queue_name != queue:
            raise Malformed(f"no actor {shown_value(fields['actor_name'])} consumes queue {queue!r}")
        args, kwargs = fields["args"], fields["kwargs"]
        if not isinstance(args, list) or len(args) != 1 or not isinstance(args[0], str) or kwargs != {}:
            raise Malformed("arguments must be exactly one string, the envelope as JSON, and no keyword arguments")
        message_id = fields["message_id"]
        if not isinstance(message_id, str) or not UUID_TEXT.match(message_id):
            raise Malformed(f"message_id {shown_value(message_id)} is not a lower-case UUID")
        timestamp = fields["message_timestamp"]
        if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
            raise Malformed("message_timestamp must be a non-negative integer (milliseconds)")
        _check_options(fields["options"])
        message = dramatiq.Message(
            queue_name=fields["queue_name"],
            actor_name=fields["actor_name"],
            args=tuple(args),
            kwargs=kwargs,
            options=fields["options"],
            message_id=message_id,
            message_timestamp=timestamp,
        )
        # The identity of these very bytes, for the dead-letter ledger should the message die: the
        # broker's dead-letter copy is found by it, not by the id its sender chose. Not an option
        # (options travel with a retry); a copy of the message (a retry's new bytes) does not keep it.
        object.__setattr__(message, COPY_DIGEST_ATTRIBUTE, copy_digest(raw))
        return message

    def refuse(self, raw: bytes | str, queue_name: str, error: Malformed) -> bool:
        """Record refused bytes; True once recorded: the caller then acknowledges them off the queue.

        False when the record could not be written (the side's database is down): the caller
        then dead-letters them in the broker instead, so the bytes are kept somewhere.
        """
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
        refusal = Refusal(
            queue_name=canonical_queue(queue_name),
            reason=str(error),
            # Text a database can store: invalid UTF-8 and NUL (PostgreSQL refuses it) escaped.
            kept=data[:KEPT_BYTES].decode("utf-8", "backslashreplace").replace("\x00", "\\x00"),
            size=len(data),
            message_id=_readable_id(data) or str(uuid.uuid5(uuid.NAMESPACE_OID, hashlib.sha256(data).hexdigest())),
            digest=copy_digest(data),
        )
        log.warning(
            "message refused",
            reason=Malformed.reason,
            detail=refusal.reason,
            queue=refusal.queue_name,
            size=refusal.size,
            refused_id=refusal.message_id,
        )
        if self.on_refused is None:
            return False
        try:
            self.on_refused(refusal)
        except Exception:  # noqa: BLE001 - kept in the broker's dead-letter queue instead
            log.exception("could not record the refused message; left in the broker's dead-letter queue", queue=refusal.queue_name)
            return False
        return True


def _json_object(raw: bytes | str) -> dict[str, Any]:
    try:
        # pydantic's reader, at half the cost of json.loads. What it reads (UTF-8 only), it reads as
        # json.loads does; what it refuses (a str holding a lone surrogate is a TypeError to it)
        # goes to json.loads, which says why, or reads the few texts only it takes (a surrogate
        # escaped alone, ``"\ud800"``, or JSON nested more than 200 deep).
        value = from_json(raw)
    except (ValueError, TypeError):
        value = _standard_json(raw)
    if not isinstance(value, dict):
        raise Malformed(f"not a dramatiq message: JSON {type(value).__name__}, not an object")
    return value


def _standard_json(raw: bytes | str) -> Any:
    """The bytes as json.loads reads them; Malformed with its reason when it cannot."""
    try:
        # UTF-8 only, as dramatiq's encoder writes (json.loads would guess UTF-16 from a BOM).
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        raise Malformed("not a dramatiq message: not UTF-8") from None
    except RecursionError:
        raise Malformed("not a dramatiq message: JSON nested too deeply") from None
    except ValueError as error:
        raise Malformed(f"not a dramatiq message: not JSON ({str(error)[:80]})") from None


def _check_options(options: Any) -> None:
    if not isinstance(options, dict):
        raise Malformed("options must be an object")
    for name, value in options.items():
        types = ALLOWED_OPTIONS.get(name)
        if types is None:
            raise Malformed(f"option {shown_value(name)} is not one this system sets")
        if not isinstance(value, types) or isinstance(value, bool):
            raise Malformed(f"option {name!r} must be a {' or '.join(t.__name__ for t in types)}")


def _readable_id(data: bytes) -> str | None:
    """The message id of refused bytes when they are a JSON object naming a UUID one."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    message_id = value.get("message_id") if isinstance(value, dict) else None
    return message_id if isinstance(message_id, str) and UUID_TEXT.match(message_id) else None


def _names(names: list[str]) -> str:
    return ", ".join(shown_value(name, 40) for name in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
