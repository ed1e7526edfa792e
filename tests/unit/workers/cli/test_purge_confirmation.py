"""``dlq purge`` asks before it drops anything, and refuses to guess when nobody can answer."""

from __future__ import annotations

import io

import pytest

from workers.cli.dlq_command import Stop, confirm
from workers.cli.exit_codes import ExitCode


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_yes_on_the_terminal_goes_ahead(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))

    confirm("Purge 3 dead letter(s)? [y/N] ")

    assert "Purge 3 dead letter(s)?" in capsys.readouterr().err


@pytest.mark.parametrize("answer", ["\n", "n\n", "no\n", "whatever\n"])
def test_anything_but_yes_purges_nothing(monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(answer))

    with pytest.raises(Stop) as stopped:
        confirm("Purge? [y/N] ")

    assert stopped.value.status == ExitCode.FAILED


def test_without_a_terminal_it_refuses_and_asks_for_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))

    with pytest.raises(Stop) as stopped:
        confirm("Purge? [y/N] ")

    assert stopped.value.status == ExitCode.USAGE and "--yes" in str(stopped.value)
