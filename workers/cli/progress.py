"""A counter line on stderr for commands that work through many items (``replayed 37/120``)."""

from __future__ import annotations

import sys
from typing import TextIO


class CounterLine:
    """Rewritten in place on a terminal; elsewhere (a log file) one line per tenth of the way and the last."""

    def __init__(self, verb: str, stream: TextIO | None = None, *, minimum: int = 2) -> None:
        self.verb = verb
        self.stream = stream or sys.stderr
        self.minimum = minimum
        self.on_terminal = self.stream.isatty()
        self._shown = False
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        if total < self.minimum:
            return
        line = f"{self.verb} {done}/{total}"
        if self.on_terminal:
            self.stream.write(f"\r{line}")
            self._shown = True
        elif (tenth := done * 10 // total) != self._last_tenth or done == total:
            self._last_tenth = tenth
            self.stream.write(f"{line}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
