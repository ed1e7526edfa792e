"""Printing for people (aligned tables) and for scripts (``--json``)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from shared.redaction import redact_text


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def fail(message: str) -> None:
    """One line on stderr (a driver's multi-line error joined), URL passwords and the configured secrets as ``***``."""
    print(f"dualwrite: {_LINE_BREAK.sub(' ', redact_text(message).strip())}", file=sys.stderr)


_LINE_BREAK = re.compile(r"\s*\n\s*")
