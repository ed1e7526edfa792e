"""What a kill waits for: every process of its side logged ``worker started``, counted as the log grows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from workers.soak.faults import STARTED, Injector


def test_started_lines_are_counted_as_the_log_grows_even_split_between_two_looks(tmp_path: Path) -> None:
    log = tmp_path / "finance-1.log"
    log.write_text('{"event": "worker process started"}\n' + STARTED[:7])
    injector = Injector.__new__(Injector)
    injector._seen = {}
    worker = SimpleNamespace(log_path=log)

    assert injector._started(worker) == 0  # type: ignore[arg-type]
    with open(log, "a") as more:
        more.write(STARTED[7:] + ', "pid": 1}\n{' + STARTED + ', "pid": 2}\n')
    assert injector._started(worker) == 2  # type: ignore[arg-type]
    assert injector._started(worker) == 2  # type: ignore[arg-type]
