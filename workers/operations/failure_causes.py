"""The cause of a dead letter: its contract, its error type and the pattern of its error text.

Two letters die of the same cause when only their ids, numbers and quoted values differ:
``project 'PRJ-1' does not exist`` and ``project 'PRJ-2' does not exist`` share the pattern
``project '<value>' does not exist``. A cause has a short id derived from those three parts, so
the same cause keeps the same id from one listing, one process and one day to the next.

A refusal (:class:`shared.errors.Refused`: a message not heard at all) is grouped otherwise: by its
reason and its queue, whatever its text and whatever contract its body claims, which a stranger
chooses. So a flood of forged messages is one group per queue, never merged with the letters of a
publisher's real mistakes (an ``InvalidContract``), and never split into as many groups as it likes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.errors import ConflictingDuplicate, Forbidden, Malformed, Refused, Unauthenticated

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
#: Refusals name each row by its index and key: ``rows.0 (HOTEL): ...``.
_ROW_KEY = re.compile(r"(\brows\.\d+) \([^)]*\)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?![\w-])")
#: A word with a digit in it is an identifier (ER-0001, PRJ-US-100, 2026-12-01), except a version (v2).
_IDENTIFIER = re.compile(r"(?<![\w-])(?!v\d+(?![\w-]))(?=[\w-]*\d)[\w-]+")
#: Refusals join one problem per row with "; "; a batch of three bad rows is still one cause.
_PROBLEM_SEPARATOR = "; "
#: The pattern is taken from the start of the error text: two texts that differ only further on
#: are one cause (and a text of any length is read in bounded time).
PATTERN_SOURCE_CHARACTERS = 2000

#: The refusals' error types (as the rows name them) and their reasons.
REFUSAL_REASONS: dict[str, str] = {
    kind.__name__: kind.reason for kind in (Refused, Unauthenticated, Forbidden, ConflictingDuplicate, Malformed)
}


@dataclass(frozen=True)
class Cause:
    contract: str | None
    error_type: str
    pattern: str
    #: A refusal's reason ("unauthenticated", "malformed"...); None for any other failure.
    reason: str | None = None
    #: The queue of a refusal (refusals are grouped per queue); None for any other failure.
    queue: str | None = None

    @property
    def refused(self) -> bool:
        return self.reason is not None

    @property
    def cause_id(self) -> str:
        """Eight hex digits, the same for the same cause wherever and whenever it is computed."""
        parts = (self.contract or "", self.error_type, self.pattern)
        if self.reason is not None:
            parts += (self.reason, self.queue or "")
        key = "\x1f".join(parts)
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def message_pattern(error: str) -> str:
    """The error text with ids, numbers and quoted values replaced by placeholders, repeats once."""
    text = _UUID.sub("<id>", error[:PATTERN_SOURCE_CHARACTERS])
    text = _ROW_KEY.sub(r"\1 (<key>)", text)
    text = _QUOTED.sub("'<value>'", text)
    text = _NUMBER.sub("<n>", text)
    text = _IDENTIFIER.sub("<id>", text)
    kept: list[str] = []
    for problem in text.split(_PROBLEM_SEPARATOR):
        # "... refused: rows.<n>: x" then "rows.<n>: x": the second row's problem repeats the first's
        if not any(earlier.endswith(problem) for earlier in kept):
            kept.append(problem)
    return _PROBLEM_SEPARATOR.join(kept)


def refusal_reason(error_type: str | None) -> str | None:
    """The reason of a refusal's error type ("Unauthenticated": "unauthenticated"); None for other types."""
    return REFUSAL_REASONS.get(error_type) if error_type is not None else None


def cause_of(contract: str | None, error_type: str, error: str, queue: str | None = None) -> Cause:
    """The cause of a failure; a refusal's is its reason on its queue (its text and contract left out)."""
    reason = refusal_reason(error_type)
    if reason is not None:
        return Cause(contract=None, error_type=error_type, pattern=f"refused: {reason}", reason=reason, queue=queue)
    return Cause(contract=contract, error_type=error_type, pattern=message_pattern(error))
