"""Reading JSON that anyone could have written: a dead letter's body, a broker's copy of a message.

``json.loads`` is not safe on such text: ``'[' * 100000`` raises RecursionError, bytes that are not
UTF-8 raise UnicodeDecodeError, an integer of 5,000 digits raises ValueError, and a value that
does parse but nests a thousand deep breaks whatever walks it next (``json.dumps(indent=2)``,
``repr``). :func:`read` turns all of that into "not JSON", with the reason; :func:`shown` gives the
text as a person may safely read it on a terminal: capped, with non-printable characters escaped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: Deeper values are read as "not JSON" (an envelope nests 4 deep: envelope, payload, rows, row).
MAX_DEPTH = 64
#: How much of a text that is not JSON is shown to a person (characters, or bytes of raw bytes).
SHOWN_CHARACTERS = 2048
#: What marks a value cut to fit.
CUT = "…"

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class Reading:
    """What a text holds: its JSON value, or why it holds none (``problem`` is then set, ``value`` None)."""

    value: Any = None
    problem: str | None = None

    @property
    def is_json(self) -> bool:
        return self.problem is None


def read(raw: str | bytes | bytearray | None, *, max_depth: int = MAX_DEPTH) -> Reading:
    """The JSON value of ``raw``; never raises, whatever the text (its problem says why it is not JSON)."""
    if raw is None:
        return Reading(problem="no text")
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return Reading(problem="not UTF-8")
    if not isinstance(raw, str):
        return Reading(problem=f"a {type(raw).__name__}, not text")
    try:
        value = json.loads(raw)
    except RecursionError:
        return Reading(problem=f"nested deeper than {max_depth} levels")
    except (ValueError, TypeError) as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        return Reading(problem=f"not JSON ({_line(str(error), 80)})")
    if not _within(value, max_depth):
        return Reading(problem=f"nested deeper than {max_depth} levels")
    return Reading(value=value)


def parse(raw: str | bytes | bytearray | None, *, max_depth: int = MAX_DEPTH) -> Any | None:
    """The JSON value of ``raw``, or None when it is not JSON (or nests too deep); never raises."""
    return read(raw, max_depth=max_depth).value


def parse_object(raw: str | bytes | bytearray | None, *, max_depth: int = MAX_DEPTH) -> dict[str, Any] | None:
    """The JSON object ``raw`` holds, or None when it holds anything else; never raises."""
    value = parse(raw, max_depth=max_depth)
    return value if isinstance(value, dict) else None


def text_field(document: Any, name: str, limit: int | None = None) -> str | None:
    """``document[name]`` when the document is an object and that field a string (cut to ``limit``); else None."""
    value = document.get(name) if isinstance(document, dict) else None
    if not isinstance(value, str):
        return None
    return fit(value, limit) if limit is not None else value


def fit(text: str, limit: int) -> str:
    """``text`` when it has at most ``limit`` characters; else its first ``limit - 1`` and ``…``."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + CUT


def shown(raw: str | bytes | bytearray, limit: int = SHOWN_CHARACTERS) -> str:
    """The first ``limit`` characters (bytes, of bytes) of ``raw``, as safe to print as to put in JSON.

    Bytes that are not UTF-8 show as ``\\xff``; control, format and other non-printable characters
    (an ANSI escape, a NUL, a lone surrogate) as ``\\x1b``, ``\\u200b``...; the rest is counted.
    """
    if isinstance(raw, bytes | bytearray):
        size = len(raw)
        text = bytes(raw[:limit]).decode("utf-8", "backslashreplace")
        unit = "bytes"
    else:
        size = len(raw)
        text = raw[:limit]
        unit = "characters"
    escaped = printable(text)
    if size > limit:
        escaped += f"{CUT} ({size - limit:,} more {unit}, {size:,} in all)"
    return escaped


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (a line break as ``\\n``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _line(text: str, limit: int) -> str:
    return fit(printable(text), limit)


def _within(value: Any, max_depth: int) -> bool:
    """Whether no array or object of ``value`` sits deeper than ``max_depth`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def shown_value(value: Any, limit: int = 72) -> str:
    """A scalar from a stranger's message, safe to put in a reason: quoted and escaped by ``repr``,
    capped; anything else named by its type only."""
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
