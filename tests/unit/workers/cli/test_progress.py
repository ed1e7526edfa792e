"""The counter line a long repair prints on stderr."""

from __future__ import annotations

import io

from workers.cli.progress import CounterLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_line_is_rewritten_in_place() -> None:
    stream = Terminal()
    progress = CounterLine("replayed", stream)

    for done in range(1, 4):
        progress(done, 3)
    progress.finish()

    assert stream.getvalue() == "\rreplayed 1/3\rreplayed 2/3\rreplayed 3/3\n"


def test_elsewhere_a_line_per_tenth_and_the_last() -> None:
    stream = io.StringIO()
    progress = CounterLine("purged", stream)

    for done in range(1, 101):
        progress(done, 100)
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert lines[-1] == "purged 100/100"
    assert len(lines) == 11  # 1/100 opens the first tenth, then one per tenth


def test_a_single_item_shows_no_counter() -> None:
    stream = Terminal()
    progress = CounterLine("replayed", stream)

    progress(1, 1)
    progress.finish()

    assert stream.getvalue() == ""
