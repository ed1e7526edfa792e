"""The record of why a message died.

The broker keeps the dead message itself (dramatiq's ``<queue>.XQ``), but neither Redis nor
RabbitMQ keeps the reason. So the consuming side writes one row per death in its own database:
the original envelope, the error type and text, the traceback and the attempt count. Unlike the
broker's copy, which expires, this row stays until an operator deals with it.

Message ids are the senders' to choose, so two letters may carry one id (a stranger, or a careless
sender, reusing a real message's id). The row therefore also keeps the SHA-256 of the exact bytes
the broker held (``copy_digest``, see :func:`copy_digest`): the operator tools pair each row with
its own copy in ``<queue>.XQ`` by it, never by the message id alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, Table

from shared.errors import error_kind
from shared.side_database import SideDatabase
from shared.untrusted_json import CUT, fit

#: The most of a message's body a row keeps (UTF-8 bytes): a huge message must not bloat the
#: database. A body cut to fit ends with :data:`BODY_CUT_NOTE`, naming its full size.
BODY_BYTES = 256 * 1024
#: The most of an error's text and of a traceback a row keeps (characters).
ERROR_CHARACTERS = 8 * 1024
TRACEBACK_CHARACTERS = 32 * 1024
BODY_CUT_NOTE = "\n…[cut when recorded: {size:,} bytes in all, the first {kept:,} kept]"
_BODY_CUT = re.compile(r"\n…\[cut when recorded: ([\d,]+) bytes in all, the first ([\d,]+) kept\]\Z")


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    queue_name: str
    actor_name: str
    body: str
    error: BaseException
    traceback: str | None
    attempts: int
    contract: str | None = None
    correlation_id: str | None = None
    #: SHA-256 of the dramatiq message's bytes as the queue held them (:func:`copy_digest`); None when unknown.
    copy_digest: str | None = None


#: The attribute of a dramatiq message (set by :class:`shared.intake.Intake` when it takes the bytes
#: in) holding :func:`copy_digest` of the bytes it was read from.
COPY_DIGEST_ATTRIBUTE = "dualwrite_copy_digest"


def copy_digest(raw: bytes | str) -> str:
    """The identity of one broker copy of a message: the SHA-256 (hex) of its exact bytes.

    The bytes a worker was given are the bytes the broker moves to ``<queue>.XQ`` when the message
    dies (Redis moves the hash entry, RabbitMQ dead-letters the delivery as it is), so the digest
    a side records with the letter's reason finds that copy again, and no other: two messages with
    one id but other bytes (another payload, signature or option) are two copies apart. Only
    byte-identical copies share a digest, and they are the same message.
    """
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    return hashlib.sha256(data).hexdigest()


def received_digest(message: object) -> str | None:
    """The :func:`copy_digest` of the bytes a dramatiq message (or its proxy) was read from, when known."""
    digest = getattr(message, COPY_DIGEST_ATTRIBUTE, None)
    return digest if isinstance(digest, str) else None


def describe_error(error: BaseException) -> str:
    return str(error) or type(error).__name__


def record_dead_letter(database: SideDatabase, letter: DeadLetter) -> None:
    with database.engine.begin() as connection:
        insert_dead_letter(connection, database, letter)


def insert_dead_letter(connection: Connection, database: SideDatabase, letter: DeadLetter) -> None:
    """The letter's row, in the caller's transaction (a side reporting a map's failure writes its report with it)."""
    table = database.messaging.dead_letters
    connection.execute(
        table.insert(),
        dead_letter_row(
            table,
            message_id=letter.message_id,
            queue_name=letter.queue_name,
            actor_name=letter.actor_name,
            contract=letter.contract,
            correlation_id=letter.correlation_id,
            error=letter.error,
            traceback=letter.traceback,
            attempts=letter.attempts,
            body=letter.body,
            copy_digest=letter.copy_digest,
        ),
    )


def dead_letter_row(
    table: Table,
    *,
    message_id: str,
    queue_name: str,
    actor_name: str,
    contract: str | None,
    correlation_id: str | None,
    error: BaseException,
    traceback: str | None,
    attempts: int,
    body: str,
    error_text: str | None = None,
    copy_digest: str | None = None,
) -> dict[str, Any]:
    """A ``dead_letters`` row whose every value fits its column, whatever the message held.

    The reason must be recorded even for a message whose ids, names or body are not what this
    system sends (PostgreSQL refuses a value longer than its column, or text with a NUL): each
    text is cut to its column's width, marked with ``…`` (a message id keeps a digest of the full
    one, so two long ids stay apart and a broker's copy still finds its row, see :func:`fit_message_id`),
    and the body to :data:`BODY_BYTES`.
    """
    row: dict[str, Any] = {
        "message_id": fit_message_id(_storable(str(message_id)), _width(table, "message_id")),
        "queue_name": _fitted(table, "queue_name", queue_name),
        "actor_name": _fitted(table, "actor_name", actor_name),
        "contract": _fitted(table, "contract", contract),
        "correlation_id": _fitted(table, "correlation_id", correlation_id),
        "error_kind": _fitted(table, "error_kind", error_kind(error)),
        "error_type": _fitted(table, "error_type", type(error).__name__),
        "error": fit(_storable(describe_error(error) if error_text is None else error_text), ERROR_CHARACTERS),
        "traceback": fit(_storable(traceback), TRACEBACK_CHARACTERS) if traceback is not None else None,
        "attempts": attempts,
        "body": fit_body(body),
        "dead_at": datetime.now(UTC),
        "copy_digest": copy_digest,  # 64 hex digits, ours (never a sender's)
    }
    return row


def fit_message_id(message_id: str, width: int = 36) -> str:
    """A message id as a ``dead_letters`` row holds it: as it is when it fits (a UUID does), else its
    start, ``…`` and eight hex digits of its SHA-256. A broker's copy of the message is matched to its
    row through this too; an operator finds it by its first characters."""
    if len(message_id) <= width:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return message_id[: width - len(CUT) - len(digest)] + CUT + digest


def fit_body(body: str) -> str:
    """The body, storable, cut to :data:`BODY_BYTES` of UTF-8 with a note of its full size when longer."""
    body = _storable(body)
    if len(body) <= BODY_BYTES // 4:  # at most 4 bytes a character: it fits
        return body
    data = body.encode("utf-8")
    if len(data) <= BODY_BYTES or (len(data) <= BODY_BYTES + 200 and body_cut_size(body) is not None):
        return body  # it fits, or it was cut already (a letter recorded again on a refused replay)
    kept = data[:BODY_BYTES].decode("utf-8", "ignore")  # a character cut in two is dropped
    return kept + BODY_CUT_NOTE.format(size=len(data), kept=len(kept.encode("utf-8")))


def body_cut_size(body: str) -> int | None:
    """The full size in bytes of a body cut when recorded (see :func:`fit_body`); None when it was kept whole."""
    found = _BODY_CUT.search(body[-120:]) if body else None
    return int(found.group(1).replace(",", "")) if found else None


def _fitted(table: Table, column: str, value: str | None) -> str | None:
    if value is None:
        return None
    return fit(_storable(str(value)), _width(table, column))


def _width(table: Table, column: str) -> int:
    kind = table.c[column].type
    return kind.length if isinstance(kind, String) and kind.length else 1 << 30


def _storable(text: str) -> str:
    """Text every database takes: a NUL (PostgreSQL refuses it) and a lone surrogate (not UTF-8) escaped."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
