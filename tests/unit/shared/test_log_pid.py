"""Every log line names the process that wrote it (shared/logging.py): the processes of a worker
started with ``--processes N`` share one stream. A forked child, which keeps its parent's logging
set-up, names itself, not its parent."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

from shared.logging import configure_logging, get_logger


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ours_and_the_libraries_lines_carry_the_pid() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)

    get_logger("tests.pid").info("worker started", sides=["finance"])
    logging.getLogger("dramatiq.worker").info("a library's line")

    logged = lines(stream.getvalue())
    assert [(line["event"], line["pid"]) for line in logged] == [
        ("worker started", os.getpid()),
        ("a library's line", os.getpid()),
    ]


def test_a_line_about_another_process_names_it_apart(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)

    get_logger("tests.pid").info("worker process started", child_pid=4242)

    [line] = lines(stream.getvalue())
    assert (line["pid"], line["child_pid"]) == (os.getpid(), 4242)


def test_a_forked_child_logs_its_own_pid(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with open(path, "a", buffering=1) as stream:
        configure_logging("INFO", "json", stream)
        log = get_logger("tests.pid")
        log.info("before the fork")  # the logger is built and cached in the parent
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            try:
                log.info("in the child")
                stream.flush()
            finally:
                os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        log.info("after the fork")
    logged = {line["event"]: line["pid"] for line in lines(path.read_text())}
    assert logged == {"before the fork": os.getpid(), "in the child": child, "after the fork": os.getpid()}
