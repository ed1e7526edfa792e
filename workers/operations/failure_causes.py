"""The cause of a dead letter: its contract, its error type and the pattern of its error text.

Two letters die of the same cause when only their ids, numbers and quoted values differ:
``project 'PRJ-1' does not exist`` and ``project 'PRJ-2' does not exist`` share the pattern
``project '<value>' does not exist``. A cause has a short id derived from those three parts, so
the same cause keeps the same id from one listing, one process and one day to the next.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
#: Refusals name each row by its index and key: ``rows.0 (HOTEL): ...``.
_ROW_KEY = re.compile(r"(\brows\.\d+) \([^)]*\)")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?![\w-])")
#: A word with a digit in it is an identifier (ER-0001, PRJ-US-100, 2026-12-01), except a version (v2).
_IDENTIFIER = re.compile(r"(?<![\w-])(?!v\d+(?![\w-]))(?=[\w-]*\d)[\w-]+")
#: Refusals join one problem per row with "; "; a batch of three bad rows is still one cause.
_PROBLEM_SEPARATOR = "; "


@dataclass(frozen=True)
class Cause:
    contract: str | None
    error_type: str
    pattern: str

    @property
    def cause_id(self) -> str:
        """Eight hex digits, the same for the same cause wherever and whenever it is computed."""
        key = "\x1f".join((self.contract or "", self.error_type, self.pattern))
        return hashlib.sha256(key.encode()).hexdigest()[:8]


def message_pattern(error: str) -> str:
    """The error text with ids, numbers and quoted values replaced by placeholders, repeats once."""
    text = _UUID.sub("<id>", error)
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


def cause_of(contract: str | None, error_type: str, error: str) -> Cause:
    return Cause(contract=contract, error_type=error_type, pattern=message_pattern(error))
